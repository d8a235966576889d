package write

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
)

func newStore(t *testing.T) (*s3.Faults, s3.Store) {
	t.Helper()
	_, store := s3test.Embedded(t, s3test.Options{Bucket: "b"})
	return s3.NewFaults(store), store
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// writeAll writes data in uneven chunks, as a program would.
func writeAll(t *testing.T, u *Upload, data []byte) error {
	t.Helper()
	for off, chunk := 0, 1; off < len(data); chunk = chunk*3 + 7 {
		n := min(chunk, len(data)-off)
		if err := u.Write(context.Background(), int64(off), data[off:off+n]); err != nil {
			return err
		}
		off += n
	}
	return nil
}

func readObject(t *testing.T, store s3.Store, key string) []byte {
	t.Helper()
	body, _, err := store.Get(context.Background(), key, 0, -1, "")
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func assertNoUploads(t *testing.T, store s3.Store) {
	t.Helper()
	ups, err := store.ListMultipartUploads(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 0 {
		t.Fatalf("incomplete multipart uploads left behind: %v", ups)
	}
}

func TestSmallObjectIsOnePut(t *testing.T) {
	faults, store := newStore(t)
	data := random(100_000)
	u := New(Config{Store: faults, PartSize: 5 << 20}, "small")
	if err := writeAll(t, u, data); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readObject(t, store, "small"), data) {
		t.Fatal("object differs")
	}
	if faults.Calls("CreateMultipart") != 0 || faults.Calls("Put") != 1 {
		t.Fatalf("CreateMultipart %d, Put %d: want one Put", faults.Calls("CreateMultipart"), faults.Calls("Put"))
	}
}

func TestEmptyObject(t *testing.T) {
	faults, store := newStore(t)
	u := New(Config{Store: faults}, "empty")
	if _, err := u.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := readObject(t, store, "empty"); len(got) != 0 {
		t.Fatalf("got %d bytes", len(got))
	}
}

func TestMultipartObject(t *testing.T) {
	faults, store := newStore(t)
	data := random(3*(5<<20) + 12345)
	u := New(Config{Store: faults, PartSize: 5 << 20, MaxInFlight: 2}, "big")
	if err := writeAll(t, u, data); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Complete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readObject(t, store, "big"), data) {
		t.Fatal("object differs")
	}
	if faults.Calls("UploadPart") != 4 {
		t.Fatalf("%d parts, want 4", faults.Calls("UploadPart"))
	}
	assertNoUploads(t, store)
}

func TestNonSequentialWriteAborts(t *testing.T) {
	faults, store := newStore(t)
	u := New(Config{Store: faults, PartSize: 5 << 20}, "k")
	if err := u.Write(context.Background(), 0, random(6<<20)); err != nil {
		t.Fatal(err)
	}
	err := u.Write(context.Background(), 100, []byte("x"))
	if !errors.Is(err, ErrNotSequential) {
		t.Fatalf("got %v, want ErrNotSequential", err)
	}
	if _, err := store.Head(context.Background(), "k"); !errors.Is(err, s3.ErrNotFound) {
		t.Fatalf("object exists after an aborted upload: %v", err)
	}
	assertNoUploads(t, store)
}

func TestPartFailureLeavesNothing(t *testing.T) {
	faults, store := newStore(t)
	faults.FailNth("UploadPart", 2, nil)
	u := New(Config{Store: faults, PartSize: 5 << 20, MaxInFlight: 1}, "k")
	err := writeAll(t, u, random(4*(5<<20)))
	if err == nil {
		_, err = u.Complete(context.Background())
	}
	if !errors.Is(err, s3.ErrInjected) {
		t.Fatalf("got %v, want the injected failure", err)
	}
	u.Abort(context.Background())
	if _, err := store.Head(context.Background(), "k"); !errors.Is(err, s3.ErrNotFound) {
		t.Fatalf("object exists after a failed upload: %v", err)
	}
	assertNoUploads(t, store)
}

func TestCompleteFailureLeavesNothing(t *testing.T) {
	faults, store := newStore(t)
	faults.FailNth("CompleteMultipart", 1, nil)
	u := New(Config{Store: faults, PartSize: 5 << 20}, "k")
	if err := writeAll(t, u, random(6<<20)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Complete(context.Background()); !errors.Is(err, s3.ErrInjected) {
		t.Fatalf("got %v", err)
	}
	assertNoUploads(t, store)
}

func TestPartSizeGrowsToReachS3Limit(t *testing.T) {
	c := Config{}
	var total int64
	for n := int32(1); n <= maxParts; n++ {
		total += c.partSize(n)
	}
	if total < 5<<40 {
		t.Fatalf("10,000 parts hold %d bytes, want at least 5 TiB", total)
	}
	if c.partSize(1) != DefaultPartSize || c.partSize(1000) != DefaultPartSize || c.partSize(1001) != 2*DefaultPartSize {
		t.Fatal("part sizes do not start at the default and double after 1,000 parts")
	}
}

// Part buffers are taken from the shared memory budget and all of it comes back, after a
// completed upload and after an aborted one.
func TestUploadMemoryBudget(t *testing.T) {
	faults, _ := newStore(t)
	budget := memory.NewBudget(12 << 20)
	for _, fail := range []bool{false, true} {
		if fail {
			faults.FailNth("UploadPart", 3, nil)
		}
		u := New(Config{Store: faults, PartSize: 5 << 20, Budget: budget}, "k")
		err := writeAll(t, u, random(22<<20))
		if budget.InUse() > budget.Limit() {
			t.Fatalf("budget exceeded: %d > %d", budget.InUse(), budget.Limit())
		}
		if err == nil {
			_, err = u.Complete(context.Background())
		}
		u.Abort(context.Background())
		if (err != nil) != fail {
			t.Fatalf("fail=%v: %v", fail, err)
		}
		if budget.InUse() != 0 {
			t.Fatalf("fail=%v: %d bytes of the budget still held", fail, budget.InUse())
		}
	}
}
