package streamfs_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/fetchahead"
	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/vfs"
)

// smallFixture is a directory d of n small files on a server that counts GETs and how many
// run at once (each waits a little, as on a real network, so that GETs made ahead overlap).
func smallFixture(t *testing.T, n int, ahead *fetchahead.Config) (x *fixture, gets, maxAtOnce *atomic.Int64) {
	t.Helper()
	keys := map[string]string{}
	for i := 0; i < n; i++ {
		keys[fmt.Sprintf("d/f%03d", i)] = smallBody(i)
	}
	keys["d/big"] = string(bytes.Repeat([]byte("B"), 2<<20))
	busy := &atOnce{}
	gets, maxAtOnce = &atomic.Int64{}, &busy.max
	var counting atomic.Bool
	x = newFixtureWith(t, fixtureOptions{keys: keys, ttl: time.Minute, fetchAhead: ahead, middleware: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if counting.Load() && r.Method == http.MethodGet && !r.URL.Query().Has("list-type") {
				gets.Add(1)
				busy.hold(5 * time.Millisecond)
			}
			next.ServeHTTP(w, r)
		})
	}})
	counting.Store(true)
	return x, gets, maxAtOnce
}

func smallBody(i int) string {
	return fmt.Sprintf("file %d ", i) + string(bytes.Repeat([]byte{byte('a' + i%26)}, 100+i))
}

// readerProcess is the process behind a read. Finding a thread's process costs system calls
// in the mount (mount.thread), and only writes need it (S5): a read's open and close must not ask.
type readerProcess struct{ t *testing.T }

func (p readerProcess) ID() uint32 {
	p.t.Errorf("a read-only open or its close asked which process it came from")
	return 1
}

// readFile opens, reads whole, closes and releases path under directory d, as cat does.
func readFile(t *testing.T, x *fixture, d vfs.InodeID, name string) string {
	t.Helper()
	ctx := context.Background()
	e, err := x.fs.Lookup(ctx, d, name)
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	h, err := x.fs.Open(ctx, e.Attr.Inode, vfs.OpenFlags{Read: true}, readerProcess{t})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer x.fs.Release(h)
	defer func() {
		if err := x.fs.Flush(ctx, h, readerProcess{t}); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	}()
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := x.fs.Read(ctx, h, int64(len(out)), buf)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}

// Reading a directory's small files in listing order, one after another, fetches the next
// ones ahead, several at once, each once, with the right bytes, and hands their memory back
// (issue 16, item 3).
func TestSmallFilesFetchedAhead(t *testing.T) {
	budget := memory.NewBudget(64 << 20)
	const n = 40
	x, gets, maxAtOnce := smallFixture(t, n, &fetchahead.Config{Budget: budget})
	d := mustLookup(t, x, "d")
	listDir(t, x, d)
	for i := 0; i < n; i++ {
		if got := readFile(t, x, d, fmt.Sprintf("f%03d", i)); got != smallBody(i) {
			t.Fatalf("f%03d: read %q, want %q", i, got, smallBody(i))
		}
	}
	if g := gets.Load(); g != n {
		t.Fatalf("%d GETs for %d files; want one each", g, n)
	}
	if m := maxAtOnce.Load(); m < 2 {
		t.Fatalf("at most %d GET at once: nothing was fetched ahead", m)
	}
	if big := readFile(t, x, d, "big"); len(big) != 2<<20 {
		t.Fatalf("big: %d bytes", len(big))
	}
	if u := budget.InUse(); u != 0 {
		t.Fatalf("%d bytes of the budget still in use after every file was closed", u)
	}
}

// Opens out of listing order fetch only the file opened; with fetching ahead off, an open
// fetches nothing until a read.
func TestSmallFilesNotFetchedAhead(t *testing.T) {
	t.Run("random order", func(t *testing.T) {
		x, gets, _ := smallFixture(t, 40, &fetchahead.Config{})
		d := mustLookup(t, x, "d")
		listDir(t, x, d)
		order := rand.New(rand.NewPCG(1, 2)).Perm(40)
		for k, i := range order[:20] {
			if k > 0 && (i == order[k-1]+1 || i == order[k-1]+2) {
				continue // two in order would be a scan
			}
			readFile(t, x, d, fmt.Sprintf("f%03d", i))
		}
		if g := gets.Load(); g > 20 {
			t.Fatalf("%d GETs for at most 20 files read out of order", g)
		}
	})
	t.Run("off", func(t *testing.T) {
		x, gets, _ := smallFixture(t, 10, nil)
		d := mustLookup(t, x, "d")
		listDir(t, x, d)
		ctx := context.Background()
		for i := 0; i < 10; i++ {
			e, err := x.fs.Lookup(ctx, d, fmt.Sprintf("f%03d", i))
			if err != nil {
				t.Fatal(err)
			}
			h, err := x.fs.Open(ctx, e.Attr.Inode, vfs.OpenFlags{Read: true}, vfs.PID(1))
			if err != nil {
				t.Fatal(err)
			}
			x.fs.Release(h)
		}
		if g := gets.Load(); g != 0 {
			t.Fatalf("%d GETs for opens without reads, with fetching ahead off", g)
		}
	})
}

func listDir(t *testing.T, x *fixture, id vfs.InodeID) {
	t.Helper()
	ctx := context.Background()
	h, err := x.fs.OpenDir(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer x.fs.ReleaseDir(h)
	if _, err := x.fs.ReadDir(ctx, h, 0); err != nil {
		t.Fatal(err)
	}
}
