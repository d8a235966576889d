package streamfs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/vfs"
)

// Walking many objects leaves the table holding what the kernel holds and what is fresh, not
// every path seen (issue 16, item 6: 200,000 objects walked took the mount from 18 to 130 MiB
// of RSS, and each walk added more); inode numbers stay the same across walks (S9).
func TestInodeTableBoundedByWhatIsHeld(t *testing.T) {
	keys := map[string]string{}
	const dirs, files = 20, 500
	for i := 0; i < dirs; i++ {
		for j := 0; j < files; j++ {
			keys[fmt.Sprintf("w/d%02d/f%03d", i, j)] = "x"
		}
	}
	x := newFixtureWith(t, fixtureOptions{keys: keys, ttl: time.Second})
	ctx := context.Background()
	walk := func() map[string]vfs.InodeID {
		ids := map[string]vfs.InodeID{}
		w := mustLookup(t, x, "w")
		for i := 0; i < dirs; i++ {
			d, err := x.fs.Lookup(ctx, w, fmt.Sprintf("d%02d", i))
			if err != nil {
				t.Fatal(err)
			}
			listDir(t, x, d.Attr.Inode)
			for j := 0; j < files; j += 7 {
				name := fmt.Sprintf("d%02d/f%03d", i, j)
				e, err := x.fs.Lookup(ctx, d.Attr.Inode, fmt.Sprintf("f%03d", j))
				if err != nil {
					t.Fatal(err)
				}
				ids[name] = e.Attr.Inode
				x.fs.Forget(e.Attr.Inode, 1) // the kernel lets go of it
			}
			x.fs.Forget(d.Attr.Inode, 1)
			x.clock.Advance(2 * time.Second) // the listing's metadata goes stale
		}
		return ids
	}
	// The table sweeps stale entries when it has doubled since the last sweep, and never below
	// 4,096 entries: it holds at most about that plus a directory's listing here.
	const bound = 4096 + 2*files
	first := walk()
	after := x.fs.Inodes()
	if after > bound {
		t.Fatalf("%d inodes held after walking %d objects; want about a directory's worth", after, dirs*files)
	}
	again := walk()
	for name, id := range first {
		if again[name] != id {
			t.Fatalf("%s: inode %d on the first walk, %d on the second (S9)", name, id, again[name])
		}
	}
	if n := x.fs.Inodes(); n > bound {
		t.Fatalf("%d inodes after a second walk", n)
	}
}
