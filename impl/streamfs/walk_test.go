package streamfs_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// atOnce measures how many requests a test server is answering at once; each is held for a
// while first, as a real network would, so that requests sent together overlap.
type atOnce struct{ running, max atomic.Int64 }

func (a *atOnce) hold(d time.Duration) {
	n := a.running.Add(1)
	defer a.running.Add(-1)
	for m := a.max.Load(); n > m && !a.max.CompareAndSwap(m, n); m = a.max.Load() {
	}
	time.Sleep(d)
}

// walkFixture is a tree of dirs directories of three files and one subdirectory each under
// t/, on a server that counts each directory's listings and how many run at once. Every
// listing waits a little, as a LIST on a real network does, so that listings made ahead
// overlap.
func walkFixture(t *testing.T, dirs int) (x *fixture, listsOf func(dir string) int, maxAtOnce *atomic.Int64) {
	t.Helper()
	keys := map[string]string{}
	for i := 0; i < dirs; i++ {
		for j := 0; j < 3; j++ {
			keys[fmt.Sprintf("t/d%02d/f%d", i, j)] = fmt.Sprint(i, j)
		}
		keys[fmt.Sprintf("t/d%02d/sub/g", i)] = "g"
	}
	var mu sync.Mutex
	counts := map[string]int{}
	busy := &atOnce{}
	maxAtOnce = &busy.max
	var counting atomic.Bool
	x = newFixtureWith(t, fixtureOptions{keys: keys, ttl: time.Minute, middleware: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			if counting.Load() && q.Has("list-type") && q.Get("delimiter") == "/" {
				mu.Lock()
				counts[q.Get("prefix")]++
				mu.Unlock()
				busy.hold(10 * time.Millisecond)
			}
			next.ServeHTTP(w, r)
		})
	}})
	counting.Store(true)
	return x, func(dir string) int {
		mu.Lock()
		defer mu.Unlock()
		return counts[dir+"/"]
	}, maxAtOnce
}

// A walk (readdir, then each subdirectory in order, as find and du do) lists ahead: the
// directories it reaches were listed while it was elsewhere, several at once, each once, and
// the walk sees exactly the tree (issue 16: find + du over 100 directories took a LIST round
// trip per directory, in series).
func TestWalkListsAhead(t *testing.T) {
	const dirs = 40
	x, listsOf, maxAtOnce := walkFixture(t, dirs)
	got := x.walk(t)
	var paths []string
	for p := range got {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if want := 1 + 1 + dirs*(1+3+1+1); len(got) != want {
		t.Fatalf("the walk saw %d names, want %d: %v", len(got), want, paths)
	}
	for i := 0; i < dirs; i++ {
		for _, d := range []string{fmt.Sprintf("t/d%02d", i), fmt.Sprintf("t/d%02d/sub", i)} {
			if n := listsOf(d); n != 1 {
				t.Errorf("%s was listed %d times, want once", d, n)
			}
		}
	}
	if m := maxAtOnce.Load(); m < 2 {
		t.Fatalf("at most %d listing ran at once: nothing was listed ahead", m)
	}
}

// A listing made ahead is not used if this mount changed the directory since, nor once the
// metadata TTL has passed (S3): the readdir then lists again and shows the change, its own or
// another writer's.
func TestWalkAheadFreshness(t *testing.T) {
	x, listsOf, _ := walkFixture(t, 20)
	ctx := context.Background()
	readdir := func(path string) map[string]bool {
		t.Helper()
		id := vfs.RootID
		for _, name := range keymapSplitAll(path) {
			e, err := x.fs.Lookup(ctx, id, name)
			if err != nil {
				t.Fatalf("lookup %s in %s: %v", name, path, err)
			}
			id = e.Attr.Inode
		}
		h, err := x.fs.OpenDir(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		defer x.fs.ReleaseDir(h)
		es, err := x.fs.ReadDir(ctx, h, 0)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, e := range es[2:] {
			names[e.Name] = true
		}
		return names
	}
	readdir("")
	readdir("t")
	readdir("t/d00") // a walk: d01.. are listed ahead
	for deadline := time.Now().Add(10 * time.Second); listsOf("t/d05") == 0 || listsOf("t/d06") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing was listed ahead")
		}
	}
	// This mount writes a file into d05 after its listing was made ahead.
	d05, err := x.fs.Lookup(ctx, mustLookup(t, x, "t"), "d05")
	if err != nil {
		t.Fatal(err)
	}
	e, h, err := x.fs.Create(ctx, d05.Attr.Inode, "mine", 0o644, vfs.Caller{Pid: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.fs.Flush(ctx, h, vfs.PID(3)); err != nil {
		t.Fatal(err)
	}
	x.fs.Release(h)
	x.fs.Forget(e.Attr.Inode, 1)
	if !readdir("t/d05")["mine"] {
		t.Fatal("a readdir after this mount's create does not show the file: a void listing made ahead was used")
	}
	// Another writer adds to d06; once the TTL has passed the readdir shows it.
	if _, err := x.store.Put(ctx, "t/d06/theirs", bytes.NewReader([]byte("t")), 1, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	x.clock.Advance(2 * time.Minute)
	if !readdir("t/d06")["theirs"] {
		t.Fatal("a listing made ahead was used after the metadata TTL")
	}
	if n := listsOf("t/d06"); n != 2 {
		t.Fatalf("t/d06 listed %d times, want 2 (ahead, then again after the TTL)", n)
	}
}

func mustLookup(t *testing.T, x *fixture, path string) vfs.InodeID {
	t.Helper()
	id := vfs.RootID
	for _, name := range keymapSplitAll(path) {
		e, err := x.fs.Lookup(context.Background(), id, name)
		if err != nil {
			t.Fatal(err)
		}
		id = e.Attr.Inode
	}
	return id
}

func keymapSplitAll(path string) []string {
	var out []string
	for path != "" {
		var name string
		path, name = keymap.Split(path)
		out = append([]string{name}, out...)
	}
	return out
}

// A listing made ahead of a walk never rolls back what the mount learnt after it started: a
// lookup that saw another writer's newer version keeps it when the readdir takes the older
// listing (found in review: the read then failed with "object changed since it was opened").
func TestWalkAheadKeepsNewerMetadata(t *testing.T) {
	x, listsOf, _ := walkFixture(t, 20)
	ctx := context.Background()
	readdir := func(id vfs.InodeID) {
		h, err := x.fs.OpenDir(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		defer x.fs.ReleaseDir(h)
		if _, err := x.fs.ReadDir(ctx, h, 0); err != nil {
			t.Fatal(err)
		}
	}
	readdir(vfs.RootID)
	readdir(mustLookup(t, x, "t"))
	readdir(mustLookup(t, x, "t/d00"))
	for deadline := time.Now().Add(10 * time.Second); listsOf("t/d05") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing listed ahead")
		}
	}
	x.clock.Advance(time.Second)
	if _, err := x.store.Put(ctx, "t/d05/f0", bytes.NewReader([]byte("NEWER")), 5, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	d05 := mustLookup(t, x, "t/d05")
	e, err := x.fs.Lookup(ctx, d05, "f0")
	if err != nil || e.Attr.Size != 5 {
		t.Fatalf("lookup of the newer version: %+v, %v", e.Attr, err)
	}
	readdir(d05) // may take the listing made ahead, from before the newer version
	h, err := x.fs.Open(ctx, e.Attr.Inode, vfs.OpenFlags{Read: true}, vfs.PID(1))
	if err != nil {
		t.Fatal(err)
	}
	defer x.fs.Release(h)
	buf := make([]byte, 64)
	n, err := x.fs.Read(ctx, h, 0, buf)
	if err != nil || string(buf[:n]) != "NEWER" {
		t.Fatalf("read %q, %v; want the newer version", buf[:n], err)
	}
}
