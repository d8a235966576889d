package streamfs_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/vfs"
)

// countingFixture is a fixture whose server counts HEADs and LISTs.
// dirKeys is a directory d of n objects f0000, f0001...: its keys, and its names in order.
func dirKeys(n int) (keys map[string]string, names []string) {
	keys = map[string]string{}
	for i := 0; i < n; i++ {
		keys[fmt.Sprintf("d/f%04d", i)] = "x"
		names = append(names, fmt.Sprintf("f%04d", i))
	}
	return keys, names
}

// refuseFirstToken answers the first listing request that carries a continuation token as a
// store does that no longer accepts it, counting it in refused; it reports whether it did.
func refuseFirstToken(w http.ResponseWriter, r *http.Request, refused *atomic.Int64) bool {
	if r.Method != http.MethodGet || r.URL.Query().Get("continuation-token") == "" || !refused.CompareAndSwap(0, 1) {
		return false
	}
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidArgument</Code><Message>The continuation token provided is incorrect</Message></Error>`)
	return true
}

func countingFixture(t *testing.T, keys map[string]string, ttl time.Duration) (*fixture, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	return countingFixtureWith(t, fixtureOptions{keys: keys, ttl: ttl})
}

// countingFixtureWith is countingFixture with more options (its middleware is the counter).
func countingFixtureWith(t *testing.T, o fixtureOptions) (*fixture, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var heads, lists, counting atomic.Int64
	inner := o.middleware
	o.middleware = func(next http.Handler) http.Handler {
		if inner != nil {
			next = inner(next)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case counting.Load() == 0:
			case r.Method == http.MethodHead:
				heads.Add(1)
			case r.Method == http.MethodGet && r.URL.Query().Has("list-type"):
				lists.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}
	x := newFixtureWith(t, o)
	counting.Store(1) // not the seeding
	return x, &heads, &lists
}

// Looking up every name of a directory, and names it does not have, costs a few lookups and
// one listing, not a HEAD and a LIST per name; the answers are the same as per-name lookups
// (sizes, directories shadowing files (K4), absent names).
func TestLookupsAnsweredFromAListing(t *testing.T) {
	keys := map[string]string{"d/sub/x": "x", "d/both": "file", "d/both/y": "y"}
	for i := 0; i < 300; i++ {
		keys[fmt.Sprintf("d/f%03d", i)] = fmt.Sprint(i)
	}
	x, heads, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	heads.Store(0)
	lists.Store(0)
	for i := 0; i < 300; i++ {
		e, err := x.fs.Lookup(ctx, d.Attr.Inode, fmt.Sprintf("f%03d", i))
		if err != nil {
			t.Fatalf("f%03d: %v", i, err)
		}
		if want := uint64(len(fmt.Sprint(i))); e.Attr.Size != want {
			t.Fatalf("f%03d: size %d, want %d", i, e.Attr.Size, want)
		}
	}
	for i := 0; i < 50; i++ {
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, fmt.Sprintf("absent%d", i)); vfs.CodeOf(err) != vfs.CodeNotFound {
			t.Fatalf("absent%d: %v", i, err)
		}
	}
	for _, name := range []string{"sub", "both"} {
		e, err := x.fs.Lookup(ctx, d.Attr.Inode, name)
		if err != nil || !e.Attr.Mode.IsDir() {
			t.Fatalf("%s: %+v, %v; want a directory (K4)", name, e.Attr, err)
		}
	}
	if h, l := heads.Load(), lists.Load(); h > 5 || l > 6 {
		t.Fatalf("350 lookups cost %d HEADs and %d LISTs; want a few lookups and one listing", h, l)
	}
}

// A listing answers only as long as rule S3 lets metadata be reused: a name created in the
// bucket after the listing may be reported absent within the negative TTL, and is found after
// it; a name deleted after the listing is found within the TTL and gone after it.
func TestListingAnswersWithinTheTTL(t *testing.T) {
	keys := map[string]string{"a": "1", "b": "2", "c": "3", "gone": "4"}
	x, _, lists := countingFixture(t, keys, 2*time.Second)
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c"} {
		if _, err := x.fs.Lookup(ctx, vfs.RootID, n); err != nil {
			t.Fatal(err)
		}
	}
	if lists.Load() == 0 {
		t.Fatal("three lookups in a directory did not list it")
	}
	if _, err := x.store.Put(ctx, "new", bytes.NewReader([]byte("n")), 1, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := x.store.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	x.clock.Advance(time.Second)
	if _, err := x.fs.Lookup(ctx, vfs.RootID, "new"); vfs.CodeOf(err) != vfs.CodeNotFound {
		t.Fatalf("a name created after the listing, within the TTL: %v; the listing said absent", err)
	}
	if _, err := x.fs.Lookup(ctx, vfs.RootID, "gone"); err != nil {
		t.Fatalf("a name deleted after the listing, within the TTL: %v; the listing said present", err)
	}
	x.clock.Advance(1500 * time.Millisecond)
	if _, err := x.fs.Lookup(ctx, vfs.RootID, "new"); err != nil {
		t.Fatalf("after the TTL: %v, want found", err)
	}
	if _, err := x.fs.Lookup(ctx, vfs.RootID, "gone"); vfs.CodeOf(err) != vfs.CodeNotFound {
		t.Fatalf("after the TTL: %v, want not found", err)
	}
}

// Concurrent lookups of one directory share one listing, and a directory too big to list
// for lookups keeps per-name lookups.
func TestConcurrentLookupsShareOneListing(t *testing.T) {
	keys := map[string]string{}
	for i := 0; i < 200; i++ {
		keys[fmt.Sprintf("f%03d", i)] = "x"
	}
	x, _, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := x.fs.Lookup(ctx, vfs.RootID, fmt.Sprintf("f%03d", i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Lookups that started before the listing each sent their one-key LIST.
	if n := lists.Load(); n > 40 {
		t.Fatalf("%d LISTs for 200 concurrent lookups", n)
	}
}

// What this mount writes is found at once, even when a listing taken before said the name was
// absent and the kernel has forgotten the new file's inode (the soak on MinIO saw ENOENT for
// files and a directory this mount had just written).
func TestOwnWritesOutliveAnEarlierListing(t *testing.T) {
	keys := map[string]string{}
	for i := 0; i < 10; i++ {
		keys[fmt.Sprintf("d/f%d", i)] = "x"
	}
	x, _, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, fmt.Sprintf("new%d", i)); vfs.CodeOf(err) != vfs.CodeNotFound {
			t.Fatalf("new%d: %v", i, err)
		}
	}
	if lists.Load() == 0 {
		t.Fatal("the directory was never listed; the test would prove nothing")
	}
	e, h, err := x.fs.Create(ctx, d.Attr.Inode, "new0", 0o644, vfs.Caller{Pid: 7})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.fs.Write(ctx, h, 0, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := x.fs.Flush(ctx, h, vfs.PID(7)); err != nil {
		t.Fatal(err)
	}
	x.fs.Release(h)
	x.fs.Forget(e.Attr.Inode, 1)
	got, err := x.fs.Lookup(ctx, d.Attr.Inode, "new0")
	if err != nil {
		t.Fatalf("a file this mount wrote: %v", err)
	}
	if got.Attr.Size != 4 {
		t.Fatalf("size %d, want 4", got.Attr.Size)
	}
}

// Creating many files in a directory whose listing is fresh costs their PUTs and the listing,
// not a HEAD and a LIST per file to check the name is free, nor a listing per file: the
// listing's absent answers hold for names this mount never had, while this mount creates
// others (issue 16: 1,000 creates sent 1,087 HEADs and 2,085 LISTs). The answers stay right:
// a name created remotely after the listing is refused at create once the TTL allows it to be
// seen, and each new file is found after its inode is forgotten.
func TestCreatesInAListedDirectory(t *testing.T) {
	keys := map[string]string{"d/old": "x"}
	x, heads, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	heads.Store(0)
	lists.Store(0)
	const n = 200
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("new%03d", i)
		// What the kernel does for open(O_CREAT): a lookup, then the create.
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, name); vfs.CodeOf(err) != vfs.CodeNotFound {
			t.Fatalf("%s: %v", name, err)
		}
		e, h, err := x.fs.Create(ctx, d.Attr.Inode, name, 0o644, vfs.Caller{Pid: 7})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.fs.Write(ctx, h, 0, []byte(name)); err != nil {
			t.Fatal(err)
		}
		if err := x.fs.Flush(ctx, h, vfs.PID(7)); err != nil {
			t.Fatal(err)
		}
		x.fs.Release(h)
		x.fs.Forget(e.Attr.Inode, 1)
	}
	if h, l := heads.Load(), lists.Load(); h > 5 || l > 5 {
		t.Fatalf("%d creates cost %d HEADs and %d LISTs besides their PUTs; want a few lookups and a listing", n, h, l)
	}
	for i := 0; i < n; i += 17 {
		name := fmt.Sprintf("new%03d", i)
		if e, err := x.fs.Lookup(ctx, d.Attr.Inode, name); err != nil || e.Attr.Size != uint64(len(name)) {
			t.Fatalf("%s after its inode was forgotten: %+v, %v", name, e.Attr, err)
		}
	}
	// A name made by another writer after the listing: found once the TTL has passed, and a
	// create of it refused then.
	if _, err := x.store.Put(ctx, "d/theirs", bytes.NewReader([]byte("t")), 1, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	x.clock.Advance(2 * time.Minute)
	if _, _, err := x.fs.Create(ctx, d.Attr.Inode, "theirs", 0o644, vfs.Caller{Pid: 7}); vfs.CodeOf(err) != vfs.CodeExists {
		t.Fatalf("create over another writer's object after the TTL: %v, want EEXIST", err)
	}
}

// Lookups that keep coming to a listed directory never wait for its next listing: one in the
// second half of the listing's life starts the next in the background, and once the first
// expires the lookups are answered from the second without a request (issue 16: stat of
// 10,000 names waited for a 10-page listing each time the 1 s TTL ran out).
func TestListingRefreshedAhead(t *testing.T) {
	keys := map[string]string{}
	for i := 0; i < 50; i++ {
		keys[fmt.Sprintf("d/f%02d", i)] = "x"
	}
	x, heads, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	d := mustLookup(t, x, "d")
	for i := 0; i < 10; i++ {
		if _, err := x.fs.Lookup(ctx, d, fmt.Sprintf("f%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if lists.Load() == 0 {
		t.Fatal("the directory was never listed; the test would prove nothing")
	}
	x.clock.Advance(40 * time.Second)
	before := lists.Load()
	if _, err := x.fs.Lookup(ctx, d, "f10"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); lists.Load() == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no listing started in the second half of the first one's life")
		}
	}
	time.Sleep(100 * time.Millisecond) // let the background listing finish (a lookup waits for it if not)
	// The first listing has expired; the second, started at 40 s, is 25 s old: in its first
	// half, so it starts no other (at exactly half its life it would).
	x.clock.Advance(25 * time.Second)
	h, l := heads.Load(), lists.Load()
	for i := 11; i < 50; i++ {
		if _, err := x.fs.Lookup(ctx, d, fmt.Sprintf("f%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := x.fs.Lookup(ctx, d, "absent"); vfs.CodeOf(err) != vfs.CodeNotFound {
		t.Fatalf("absent: %v", err)
	}
	if dh, dl := heads.Load()-h, lists.Load()-l; dh != 0 || dl != 0 {
		t.Fatalf("lookups after the first listing expired sent %d HEADs and %d LISTs; want none", dh, dl)
	}
}

// The kernel's last FORGET of a name must not make a fresh listing answer it absent: the
// listing recorded the name on its inode, and the inode went with the FORGET, so the next
// lookup found neither and took the listing's silence for absence (the chaos campaign: an
// unlink said "no such file" and the object stayed, after a store outage made the kernel
// drop its dentries).
func TestForgetDoesNotMakeAListedNameAbsent(t *testing.T) {
	ctx := context.Background()
	x := newFixture(t, "", map[string]string{"d/f": "x"})
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	f, err := x.fs.Lookup(ctx, d.Attr.Inode, "f")
	if err != nil {
		t.Fatal(err)
	}
	// Misses list the directory; the listing answers for f and for the names it lacks.
	for i := 0; i < 4; i++ {
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, fmt.Sprintf("absent%d", i)); vfs.CodeOf(err) != vfs.CodeNotFound {
			t.Fatalf("absent%d: %v", i, err)
		}
	}
	x.fs.Forget(f.Attr.Inode, 1) // the kernel dropped its dentry and inode
	e, err := x.fs.Lookup(ctx, d.Attr.Inode, "f")
	if err != nil {
		t.Fatalf("lookup of f after the kernel forgot it: %v", err)
	}
	if e.Attr.Inode != f.Attr.Inode {
		t.Fatalf("f's inode number changed: %d, was %d", e.Attr.Inode, f.Attr.Inode)
	}
}

// The lookup of a directory of up to 1,000 entries lists it in the round trip it costs anyway
// (one delimited page under its key): every lookup of its names after it, found or absent,
// and its readdir send no request, and answer what per-name lookups would (sizes, K4).
func TestLookupOfADirectoryAnswersItsChildren(t *testing.T) {
	keys := map[string]string{"d/sub/x": "x", "d/both": "file", "d/both/y": "y"}
	for i := 0; i < 300; i++ {
		keys[fmt.Sprintf("d/f%03d", i)] = fmt.Sprint(i)
	}
	x, heads, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	if h, l := heads.Load(), lists.Load(); h != 1 || l != 1 {
		t.Fatalf("the lookup of d cost %d HEADs and %d LISTs, want 1 and 1", h, l)
	}
	heads.Store(0)
	lists.Store(0)
	for i := 0; i < 300; i++ {
		e, err := x.fs.Lookup(ctx, d.Attr.Inode, fmt.Sprintf("f%03d", i))
		if err != nil {
			t.Fatalf("f%03d: %v", i, err)
		}
		if want := uint64(len(fmt.Sprint(i))); e.Attr.Size != want {
			t.Fatalf("f%03d: size %d, want %d", i, e.Attr.Size, want)
		}
	}
	for _, name := range []string{"absent", "f0", "zzz"} {
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, name); vfs.CodeOf(err) != vfs.CodeNotFound {
			t.Fatalf("%s: %v, want not found", name, err)
		}
	}
	for _, name := range []string{"sub", "both"} {
		e, err := x.fs.Lookup(ctx, d.Attr.Inode, name)
		if err != nil || !e.Attr.Mode.IsDir() {
			t.Fatalf("%s: %+v, %v; want a directory (K4)", name, e.Attr, err)
		}
	}
	h, err := x.fs.OpenDir(ctx, d.Attr.Inode)
	if err != nil {
		t.Fatal(err)
	}
	defer x.fs.ReleaseDir(h)
	var names int
	for off := uint64(0); ; {
		es, err := x.fs.ReadDir(ctx, h, off)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		names += len(es)
		off += uint64(len(es))
	}
	if want := 302 + 2; names != want { // . and .., 300 files, sub, both
		t.Fatalf("readdir: %d entries, want %d", names, want)
	}
	if h, l := heads.Load(), lists.Load(); h != 0 || l != 0 {
		t.Fatalf("lookups and the readdir after d's lookup cost %d HEADs and %d LISTs, want none", h, l)
	}
}

// When a directory has more than one page, its lookup's page answers only the names it covers:
// a name sorting after its last key is asked for, and found or not by the store, not taken
// for absent. A name created in the bucket after the lookup is found once the negative TTL
// has passed.
func TestFirstPageAnswersOnlyWhatItCovers(t *testing.T) {
	keys, _ := dirKeys(1100)
	x, heads, lists := countingFixture(t, keys, 2*time.Second)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	heads.Store(0)
	lists.Store(0)
	// f0999, the page's last key, is not covered: its prefix "f0999/" could follow (K4).
	for i := 0; i < 999; i++ {
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, fmt.Sprintf("f%04d", i)); err != nil {
			t.Fatalf("f%04d: %v", i, err)
		}
	}
	if _, err := x.fs.Lookup(ctx, d.Attr.Inode, "f0500a"); vfs.CodeOf(err) != vfs.CodeNotFound {
		t.Fatalf("f0500a, inside the first page: %v, want not found", err)
	}
	if h, l := heads.Load(), lists.Load(); h != 0 || l != 0 {
		t.Fatalf("names of the first page cost %d HEADs and %d LISTs, want none", h, l)
	}
	if _, err := x.fs.Lookup(ctx, d.Attr.Inode, "f1050"); err != nil {
		t.Fatalf("f1050, after the first page: %v", err)
	}
	if _, err := x.store.Put(ctx, "d/f0500b", bytes.NewReader([]byte("n")), 1, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.fs.Lookup(ctx, d.Attr.Inode, "f0500b"); vfs.CodeOf(err) != vfs.CodeNotFound {
		t.Fatalf("a name created after the lookup, within the TTL: %v; the page said absent", err)
	}
	x.clock.Advance(2500 * time.Millisecond)
	if _, err := x.fs.Lookup(ctx, d.Attr.Inode, "f0500b"); err != nil {
		t.Fatalf("after the TTL: %v, want found", err)
	}
}

// readAll reads directory id to its end, as getdents does, and returns the names after "."
// and "..", and how many LISTs the first ReadDir cost.
func readAll(t *testing.T, x *fixture, id vfs.InodeID, lists *atomic.Int64) (names []string, firstLists int64) {
	t.Helper()
	ctx := context.Background()
	h, err := x.fs.OpenDir(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer x.fs.ReleaseDir(h)
	lists.Store(0)
	for off := uint64(0); ; {
		es, err := x.fs.ReadDir(ctx, h, off)
		if err != nil {
			t.Fatal(err)
		}
		if off == 0 {
			firstLists = lists.Load()
		}
		if len(es) == 0 {
			return names, firstLists
		}
		for _, e := range es {
			if e.Name != "." && e.Name != ".." {
				names = append(names, e.Name)
			}
		}
		off = es[len(es)-1].Offset
	}
}

// A directory of several pages is handed out as its pages arrive: the first readdir after the
// directory's lookup costs no LIST (it starts from the page the lookup read), the rest one
// LIST a page, and the whole is every name once in byte order (K6), even when a later page
// holds the directory "a" that sorts before the "a-..." names of the first (S3 orders "a/"
// after "a-").
func TestReadDirHandsOutPagesAsTheyArrive(t *testing.T) {
	keys := map[string]string{"d/a/x": "x"}
	var want []string
	for i := 0; i < 2500; i++ {
		keys[fmt.Sprintf("d/f%04d", i)] = "x"
		keys[fmt.Sprintf("t/a-%04d", i)] = "x"
		want = append(want, fmt.Sprintf("f%04d", i))
	}
	keys["t/a/x"] = "x"
	x, _, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	for _, dir := range []string{"d", "t"} {
		d, err := x.fs.Lookup(ctx, vfs.RootID, dir)
		if err != nil {
			t.Fatal(err)
		}
		names, first := readAll(t, x, d.Attr.Inode, lists)
		// t's lookup, the second in the root, was answered by a listing of the root: no
		// first page of t's own, and nothing of t's first two pages settles before "a/".
		wantLists, wantFirst := map[string]int64{"d": 2, "t": 3}[dir], map[string]int64{"d": 0, "t": 3}[dir]
		if n := lists.Load(); n != wantLists || first != wantFirst {
			t.Fatalf("%s: reading 3 pages cost %d LISTs, %d of them before the first entries; want %d and %d", dir, n, first, wantLists, wantFirst)
		}
		if !sort.StringsAreSorted(names) || len(names) != 2501 {
			t.Fatalf("%s: %d names, sorted %v", dir, len(names), sort.StringsAreSorted(names))
		}
		if dir == "d" {
			if !slices.Equal(names[1:], want) || names[0] != "a" {
				t.Fatalf("d: names %v...", names[:3])
			}
		} else if names[0] != "a" || names[1] != "a-0000" {
			t.Fatalf("t: names start %v, want a, a-0000", names[:2])
		}
	}
}

// The first page of a big directory says nothing of a name whose directory prefix may still
// come on a later page: "a" is a file on the first page, and the prefix "a/" on the second
// makes it a directory (K4).
func TestFirstPageDoesNotDecideWhatALaterPageShadows(t *testing.T) {
	keys := map[string]string{"d/a": "file", "d/a/x": "x"}
	for i := 0; i < 1000; i++ {
		keys[fmt.Sprintf("d/a-%04d", i)] = "x"
	}
	x, _, _ := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	e, err := x.fs.Lookup(ctx, d.Attr.Inode, "a")
	if err != nil || !e.Attr.Mode.IsDir() {
		t.Fatalf("a: %+v, %v; want a directory (K4)", e.Attr, err)
	}
	if _, err := x.fs.Lookup(ctx, d.Attr.Inode, "a-0500"); err != nil {
		t.Fatal(err)
	}
}

// Two readdirs that start together after a directory's lookup never share the listing its
// lookup read: each reads every name once (a shared one crashed the mount with a concurrent
// map write, or lost names).
func TestConcurrentReaddirsTakeALookupsPageOnce(t *testing.T) {
	keys, _ := dirKeys(2500)
	x, _, _ := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	for iter := 0; iter < 20; iter++ {
		x.clock.Advance(2 * time.Minute)
		d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		counts := make([]int, 2)
		start := make(chan struct{})
		for g := range counts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := x.fs.OpenDir(ctx, d.Attr.Inode)
				if err != nil {
					t.Error(err)
					return
				}
				defer x.fs.ReleaseDir(h)
				<-start
				for off := uint64(0); ; {
					es, err := x.fs.ReadDir(ctx, h, off)
					if err != nil {
						t.Error(err)
						return
					}
					if len(es) == 0 {
						return
					}
					counts[g] += len(es)
					off = es[len(es)-1].Offset
				}
			}()
		}
		close(start)
		wg.Wait()
		if counts[0] != 2502 || counts[1] != 2502 {
			t.Fatalf("iteration %d: the two readdirs read %v entries, want 2502 each", iter, counts)
		}
	}
}

// Lookups of directories nobody reads (the path of a file opened by name) do not keep the
// slots of first pages for good: the readdir after a later lookup still starts from its page.
func TestUnreadFirstPagesDoNotCrowdOutLaterOnes(t *testing.T) {
	keys := map[string]string{}
	for i := 0; i < 40; i++ {
		keys[fmt.Sprintf("p%02d/f", i)] = "x"
	}
	x, _, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		if _, err := x.fs.Lookup(ctx, vfs.RootID, fmt.Sprintf("p%02d", i)); err != nil {
			t.Fatal(err)
		}
		x.clock.Advance(3 * time.Second) // one lookup per miss window: no listing of the root
	}
	x.clock.Advance(10 * time.Minute)
	d, err := x.fs.Lookup(ctx, vfs.RootID, "p35")
	if err != nil {
		t.Fatal(err)
	}
	lists.Store(0)
	h, err := x.fs.OpenDir(ctx, d.Attr.Inode)
	if err != nil {
		t.Fatal(err)
	}
	defer x.fs.ReleaseDir(h)
	if _, err := x.fs.ReadDir(ctx, h, 0); err != nil {
		t.Fatal(err)
	}
	if n := lists.Load(); n != 0 {
		t.Fatalf("readdir after the lookup cost %d LISTs, want 0", n)
	}
}

// A directory's own lookup does not make it one whose listing is refreshed ahead: a lookup of
// a name its first page answered sends nothing, now or in the background.
func TestFirstPageIsNotRefreshedAhead(t *testing.T) {
	keys, _ := dirKeys(2500)
	x, heads, lists := countingFixture(t, keys, 2*time.Second)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	x.clock.Advance(1200 * time.Millisecond) // the second half of the page's life
	lists.Store(0)
	heads.Store(0)
	if _, err := x.fs.Lookup(ctx, d.Attr.Inode, "f0001"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a refresh would have listed by now
	if l, h := lists.Load(), heads.Load(); l != 0 || h != 0 {
		t.Fatalf("a lookup the first page answered cost %d LISTs and %d HEADs, want none", l, h)
	}
}

// A directory listed for lookups after its own lookup read its first page goes on from that
// page: one LIST for the second page, not two, and the names the first page could not settle
// (f0999, whose "f0999/" comes on the second page) are decided with the rest (K4).
func TestListingForLookupsGoesOnFromTheFirstPage(t *testing.T) {
	keys, _ := dirKeys(1100)
	keys["d/f0999/x"] = "x"
	x, heads, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	heads.Store(0)
	lists.Store(0)
	for _, n := range []string{"f1050", "f1060"} { // two misses: the second lists
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, n); err != nil {
			t.Fatal(err)
		}
	}
	if h, l := heads.Load(), lists.Load(); h != 1 || l != 2 {
		t.Fatalf("a lookup and a listing of the rest cost %d HEADs and %d LISTs, want 1 and 2", h, l)
	}
	for i := 0; i < 1100; i++ {
		e, err := x.fs.Lookup(ctx, d.Attr.Inode, fmt.Sprintf("f%04d", i))
		if err != nil {
			t.Fatalf("f%04d: %v", i, err)
		}
		if dir := e.Attr.Mode.IsDir(); dir != (i == 999) {
			t.Fatalf("f%04d: directory %v (K4: only f0999 has keys below it)", i, dir)
		}
	}
	for _, n := range []string{"f0500x", "f1050x", "zzz"} {
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, n); vfs.CodeOf(err) != vfs.CodeNotFound {
			t.Fatalf("%s: %v, want not found", n, err)
		}
	}
	if h, l := heads.Load(), lists.Load(); h != 1 || l != 2 {
		t.Fatalf("lookups after the listing sent %d HEADs and %d LISTs in all, want none more", h-1, l-2)
	}
}

// A store that refuses the first page's continuation token (it gave it out a while ago) gets
// the directory listed from the start instead: the lookups are answered all the same.
func TestListingForLookupsReadsAllWhenTheTokenIsRefused(t *testing.T) {
	keys, _ := dirKeys(1100)
	var refused atomic.Int64
	x := newFixtureWith(t, fixtureOptions{keys: keys, ttl: time.Minute, middleware: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if refuseFirstToken(w, r, &refused) {
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"f1050", "f1060", "f1099", "f0001"} {
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, n); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	if _, err := x.fs.Lookup(ctx, d.Attr.Inode, "f1050x"); vfs.CodeOf(err) != vfs.CodeNotFound {
		t.Fatalf("f1050x: %v, want not found", err)
	}
	if refused.Load() != 1 {
		t.Fatalf("the store refused %d continuation tokens; the test proves nothing unless one", refused.Load())
	}
}

// A readdir that goes on from its lookup's first page, and whose store refuses that page's
// continuation token, lists from the start and still gives every name once, in order.
func TestReadDirReadsAllWhenTheTokenIsRefused(t *testing.T) {
	keys, want := dirKeys(2500)
	var refused, lists atomic.Int64
	x := newFixtureWith(t, fixtureOptions{keys: keys, ttl: time.Minute, middleware: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
				lists.Add(1)
			}
			if refuseFirstToken(w, r, &refused) {
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	d, err := x.fs.Lookup(context.Background(), vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	names, first := readAll(t, x, d.Attr.Inode, &lists)
	if first != 0 || refused.Load() != 1 {
		t.Fatalf("first readdir cost %d LISTs, %d tokens refused; want 0 and 1 (else the test proves nothing)", first, refused.Load())
	}
	if !slices.Equal(names, want) {
		t.Fatalf("%d names, in order %v; want the 2,500 once each", len(names), sort.StringsAreSorted(names))
	}
}
