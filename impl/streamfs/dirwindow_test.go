package streamfs_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/vfs"
)

// bigDirKeys is a directory d of more names than a listing for lookups may read (10 pages),
// with a file shadowed by a directory (K4) on a page boundary and in the middle of a page.
func bigDirKeys() (keys map[string]string, names []string) {
	keys = map[string]string{}
	for i := 0; i < 12_500; i++ {
		keys[fmt.Sprintf("d/f%05d", i)] = fmt.Sprint(i % 97)
		names = append(names, fmt.Sprintf("f%05d", i))
	}
	for _, i := range []int{999, 1000, 4321} {
		keys[fmt.Sprintf("d/f%05d/x", i)] = "below"
	}
	return keys, names
}

// Looking up every name of a directory too big to list for lookups, in key order (`ls -l`,
// find, du), costs a page per 1,000 names, not a HEAD and a LIST per name; the answers are
// what per-name lookups give: sizes, directories that shadow files (also across a page
// boundary, K4), and names the directory does not have.
func TestLookupsInKeyOrderReadPagesOfABigDirectory(t *testing.T) {
	keys, names := bigDirKeys()
	x, heads, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	heads.Store(0)
	lists.Store(0)
	for i, name := range names {
		e, err := x.fs.Lookup(ctx, d.Attr.Inode, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch i {
		case 999, 1000, 4321:
			if !e.Attr.Mode.IsDir() {
				t.Fatalf("%s: %v; want a directory (K4)", name, e.Attr.Mode)
			}
		default:
			if want := uint64(len(fmt.Sprint(i % 97))); e.Attr.Mode.IsDir() || e.Attr.Size != want {
				t.Fatalf("%s: mode %v size %d, want a file of %d bytes", name, e.Attr.Mode, e.Attr.Size, want)
			}
		}
		if i%1500 == 7 { // an absent name between two present ones, in order
			if _, err := x.fs.Lookup(ctx, d.Attr.Inode, name+"-absent"); vfs.CodeOf(err) != vfs.CodeNotFound {
				t.Fatalf("%s-absent: %v, want not found", name, err)
			}
		}
	}
	// Per-name lookups would cost 12,500 HEADs and as many LISTs. Here: the first few
	// lookups alone, the listing that finds the directory too big (10 pages), and a page per
	// 1,000 names.
	if h, l := heads.Load(), lists.Load(); h > 30 || l > 45 {
		t.Fatalf("12,500 lookups in key order cost %d HEADs and %d LISTs", h, l)
	}
}

// Lookups out of key order in a big directory keep the HEAD + LIST pair, and their answers
// stay right; a name made in the bucket after a page was read may be absent while the TTL
// lets that page answer, and is found after it.
func TestBigDirectoryPagesAnswerWithinTheTTL(t *testing.T) {
	keys, names := bigDirKeys()
	x, _, _ := countingFixture(t, keys, 2*time.Second)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range rand.Perm(len(names))[:300] {
		e, err := x.fs.Lookup(ctx, d.Attr.Inode, names[i])
		if err != nil || (i == 4321) != e.Attr.Mode.IsDir() {
			t.Fatalf("%s: %+v, %v", names[i], e.Attr, err)
		}
	}
	x.clock.Advance(3 * time.Second)
	for _, name := range names[2000:2100] {
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// f02100 is on the page read ahead or the one the walk is on: made after it was read.
	if _, err := x.store.Put(ctx, "d/f02100-new", bytes.NewReader([]byte("n")), 1, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.fs.Lookup(ctx, d.Attr.Inode, "f02100-new"); err != nil && vfs.CodeOf(err) != vfs.CodeNotFound {
		t.Fatalf("a name made after the page was read: %v", err) // absent or found: both within S3
	}
	x.clock.Advance(3 * time.Second)
	if _, err := x.fs.Lookup(ctx, d.Attr.Inode, "f02100-new"); err != nil {
		t.Fatalf("a name made after the page was read, after the TTL: %v", err)
	}
}

// settled waits until no LIST has been sent for 100 ms: the pages a walk reads ahead are in.
func settled(lists *atomic.Int64) {
	for last := int64(-1); ; {
		n := lists.Load()
		if n == last {
			return
		}
		last = n
		time.Sleep(100 * time.Millisecond)
	}
}

// Directories that shadow files (K4) at every kind of place in a walk's pages: on a page's
// last line, just after it, and mid-page, with a key that sorts between the file and its
// directory prefix ("f00999-a" between "f00999" and "f00999/").
func TestBigDirectoryWalkDecidesShadowingAcrossPages(t *testing.T) {
	for _, step := range []int{999, 1000, 333} {
		keys := map[string]string{}
		var names []string
		dirs := map[int]bool{}
		for i := 0; i < 12_500; i++ {
			keys[fmt.Sprintf("d/f%05d", i)] = "x"
			names = append(names, fmt.Sprintf("f%05d", i))
			if i%step == step-1 {
				keys[fmt.Sprintf("d/f%05d/x", i)] = "y"
				keys[fmt.Sprintf("d/f%05d-a", i)] = "y"
				dirs[i] = true
			}
		}
		x, _, _ := countingFixture(t, keys, time.Minute)
		ctx := context.Background()
		d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
		if err != nil {
			t.Fatal(err)
		}
		for i, name := range names {
			e, err := x.fs.Lookup(ctx, d.Attr.Inode, name)
			if err != nil || e.Attr.Mode.IsDir() != dirs[i] {
				t.Fatalf("step %d, %s: %v, %v; a directory: %v", step, name, e.Attr.Mode, err, dirs[i])
			}
			if dirs[i] {
				if _, err := x.fs.Lookup(ctx, d.Attr.Inode, name+"-a"); err != nil {
					t.Fatalf("step %d, %s-a: %v", step, name, err)
				}
			}
		}
	}
}

// An object carried from one page of a walk to the next (its directory prefix could still
// follow) is answered as of the page that showed it, even when a whole page of names lies
// between it and its prefix: a name made in the bucket after that page was read is found
// once the TTL counted from that page has run out.
func TestCarriedNamesAnswerAsOfThePageThatShowedThem(t *testing.T) {
	keys := map[string]string{}
	for i := 0; i < 4000; i++ {
		keys[fmt.Sprintf("d/a%05d", i)] = "a"
	}
	for i := 0; i < 2500; i++ { // "g!..." sorts after "g" and before "g/"
		keys[fmt.Sprintf("d/g!%04d", i)] = "g"
	}
	for i := 0; i < 10000; i++ {
		keys[fmt.Sprintf("d/h%05d", i)] = "h"
	}
	x, _, lists := countingFixture(t, keys, 20*time.Second)
	look := lookerIn(t, x, "d")
	// A walk from a01000: its pages run up to the one where "g" would be (g!0000..g!0999).
	for i := 1000; i < 1010; i++ {
		if err := look(fmt.Sprintf("a%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	settled(lists)
	if _, err := x.store.Put(context.Background(), "d/g", bytes.NewReader([]byte("n")), 1, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"a02000x", "a03000x"} { // the walk moves on: later pages are read
		x.clock.Advance(6 * time.Second)
		if err := look(step); vfs.CodeOf(err) != vfs.CodeNotFound {
			t.Fatalf("%s: %v, want not found", step, err)
		}
		settled(lists)
	}
	x.clock.Advance(9 * time.Second) // 21 s after the page that showed "g" absent (TTL 20 s)
	if err := look("g"); err != nil {
		t.Fatalf("g, made after the page that showed it absent, past that page's TTL: %v", err)
	}
}

// A page a walk reads after this mount removed a name never brings the name back from an
// earlier page (the objects carried from page to page).
func TestWalkPagesDoNotBringBackWhatThisMountRemoved(t *testing.T) {
	keys := map[string]string{}
	for i := 0; i < 5000; i++ {
		keys[fmt.Sprintf("d/a%05d", i)] = "a"
	}
	for i := 0; i < 10000; i++ {
		keys[fmt.Sprintf("d/h%05d", i)] = "h"
	}
	x, _, lists := countingFixtureWith(t, fixtureOptions{keys: keys, ttl: time.Minute, delete: true})
	look := lookerIn(t, x, "d")
	for i := 1000; i < 1010; i++ { // pages up to a04000..a04999; a04999 is carried on
		if err := look(fmt.Sprintf("a%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	settled(lists)
	d, err := x.fs.Lookup(context.Background(), vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	if err := x.fs.Unlink(context.Background(), d.Attr.Inode, "a04999"); err != nil {
		t.Fatal(err)
	}
	if err := look("a02000x"); vfs.CodeOf(err) != vfs.CodeNotFound { // the next page is read
		t.Fatalf("a02000x: %v, want not found", err)
	}
	settled(lists)
	if err := look("a04999"); vfs.CodeOf(err) != vfs.CodeNotFound {
		t.Fatalf("a04999, which this mount removed: %v, want not found", err)
	}
}

// lookerIn looks up directory dir of the root and returns a lookup of its names.
func lookerIn(t *testing.T, x *fixture, dir string) func(name string) error {
	t.Helper()
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, dir)
	if err != nil {
		t.Fatal(err)
	}
	return func(name string) error {
		_, err := x.fs.Lookup(ctx, d.Attr.Inode, name)
		return err
	}
}
