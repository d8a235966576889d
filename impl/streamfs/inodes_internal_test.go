package streamfs

import (
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/vfs"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Two keys whose numbers meet while both are live get different numbers, and the later one
// keeps its number for as long as the table remembers it was moved (S9).
func TestInodeNumberCollision(t *testing.T) {
	var tbl inodeTable
	now := time.Unix(1_700_000_000, 0)
	tbl.init(func() time.Time { return now })
	b := nodeKey{"b", keymap.File}
	h := hashNumber(b)
	// A live inode of another key at b's number, as a hash collision would make it.
	squatter := &inode{id: h, path: "a", kind: keymap.File, lookups: 1}
	tbl.live[h], tbl.byKey[nodeKey{"a", keymap.File}] = squatter, squatter
	in := tbl.getOrCreate("b", keymap.File)
	if in.id == h {
		t.Fatal("two live inodes share a number")
	}
	moved := in.id
	in.lookups = 1
	tbl.forget(moved, 1)
	if got := tbl.getOrCreate("b", keymap.File).id; got != moved {
		t.Fatalf("after a forget b's number changed from %d to %d", moved, got)
	}
	if tbl.getOrCreate("a", keymap.File) != squatter {
		t.Fatal("the first key lost its inode")
	}
}

// The numbers of the root and of a key are never 0 or the root's for another key.
func TestHashNumberRange(t *testing.T) {
	for _, p := range []string{"", "a", "a/b", "x/y/z"} {
		for _, k := range []keymap.Kind{keymap.File, keymap.Dir} {
			if id := hashNumber(nodeKey{p, k}); id <= vfs.RootID || id >= 1<<63 {
				t.Errorf("%q %v: number %d", p, k, id)
			}
		}
	}
}
