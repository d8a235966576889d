package streamfs_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
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
	if h, l := heads.Load(), lists.Load(); h > 100 || l > 60 {
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
