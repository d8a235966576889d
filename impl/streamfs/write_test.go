package streamfs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/streamfs"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/impl/write"
)

func TestWriteFailureIsReported(t *testing.T) {
	ctx := context.Background()
	x := newFixture(t, "", nil)
	faults := s3.NewFaults(x.store)
	faults.FailNth("UploadPart", 2, s3.ErrAccessDenied)
	f, err := streamfs.New(streamfs.Config{Store: faults, Clock: clock.NewFake(time.Unix(1, 0)), MetadataTTL: time.Second, Upload: write.Config{PartSize: 5 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	_, h, err := f.Create(ctx, vfs.RootID, "big", 0o644, vfs.Caller{Pid: 7})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	var failed error
	for off := int64(0); off < 30<<20 && failed == nil; off += int64(len(chunk)) {
		failed = f.Write(ctx, h, off, chunk)
	}
	if failed == nil {
		failed = f.Flush(ctx, h, vfs.PID(7))
	}
	f.Release(h)
	if vfs.CodeOf(failed) != vfs.CodeIO && vfs.CodeOf(failed) != vfs.CodeAccess {
		t.Fatalf("got %v (code %v), want an I/O error", failed, vfs.CodeOf(failed))
	}
	if _, err := x.store.Head(ctx, "big"); !errors.Is(err, s3.ErrNotFound) {
		t.Fatalf("object left behind: %v", err)
	}
}

// A part that failed in the background is what a write out of sequence reports then: the
// store's failure (EIO), not the offset (EINVAL), since the upload was lost before it.
func TestOutOfSequenceWriteAfterAPartFailedIsEIO(t *testing.T) {
	ctx := context.Background()
	x := newFixture(t, "", nil)
	faults := s3.NewFaults(x.store)
	faults.FailNth("UploadPart", 1, s3.ErrAccessDenied)
	f, err := streamfs.New(streamfs.Config{Store: faults, Clock: clock.NewFake(time.Unix(1, 0)), MetadataTTL: time.Second, Upload: write.Config{PartSize: 5 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	_, h, err := f.Create(ctx, vfs.RootID, "big", 0o644, vfs.Caller{Pid: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release(h)
	chunk := make([]byte, 1<<20)
	off := int64(0)
	for ; off < 6<<20; off += int64(len(chunk)) { // the first part is sent, and fails
		if err := f.Write(ctx, h, off, chunk); err != nil {
			break
		}
	}
	for deadline := time.Now().Add(5 * time.Second); faults.Calls("UploadPart") == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the failed call returned at once; its failure is recorded
	err = f.Write(ctx, h, off+4096, chunk)
	if vfs.CodeOf(err) != vfs.CodeIO {
		t.Fatalf("write out of sequence after a failed part: %v (code %v), want EIO", err, vfs.CodeOf(err))
	}
}

// Unlink of a file being written is refused (S2) by what the mount knows, also when the
// store cannot be asked whether a directory shadows it.
func TestUnlinkOfAFileBeingWrittenWithTheStoreDown(t *testing.T) {
	ctx := context.Background()
	x := newFixture(t, "", nil)
	faults := s3.NewFaults(x.store)
	f, err := streamfs.New(streamfs.Config{Store: faults, Clock: clock.NewFake(time.Unix(1, 0)), MetadataTTL: time.Second, AllowDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	_, h, err := f.Create(ctx, vfs.RootID, "f", 0o644, vfs.Caller{Pid: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release(h)
	faults.FailFrom("Head", 1, errors.New("connection refused"))
	faults.FailFrom("List", 1, errors.New("connection refused"))
	if err := f.Unlink(ctx, vfs.RootID, "f"); vfs.CodeOf(err) != vfs.CodePerm {
		t.Fatalf("unlink of a file being written, store down: %v (code %v), want EPERM", err, vfs.CodeOf(err))
	}
}
