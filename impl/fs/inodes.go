package fs

import (
	"time"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// inode is one file or directory the kernel knows.
type inode struct {
	// Constant data.
	id   InodeID
	path string // below the mount root, "" for the root
	kind keymap.Kind

	// Mutable state, GUARDED_BY(FS.mu).
	lookups uint64 // the kernel's lookup count; the inode is dropped at zero
	size    int64
	mtime   time.Time
	etag    string
	// validUntil is when the cached metadata must be checked with the store again (S3).
	validUntil time.Time
	// local: a directory made by mkdir that may not exist in the bucket (S7), or a file
	// being written whose object does not exist yet. Local inodes are answered without
	// asking the store and are listed in their parent.
	local bool
	// writer is the open write handle of a file being written (S2, S4), or nil.
	writer *writeHandle
}

// nodeKey names an inode: a path that was a file and is now a directory is a different inode,
// because the kernel cannot change the type of an inode it knows.
type nodeKey struct {
	path string
	kind keymap.Kind
}

// inodeTable keeps inode numbers stable for the life of the mount (S9): a number, once given
// to a path and kind, is never reused, and the same path and kind always get the same number,
// even after the kernel has forgotten the inode.
type inodeTable struct {
	numbers map[nodeKey]InodeID
	live    map[InodeID]*inode
	next    InodeID
}

func (t *inodeTable) init(now time.Time) {
	t.numbers = map[nodeKey]InodeID{{"", keymap.Dir}: RootID}
	t.live = map[InodeID]*inode{RootID: {id: RootID, kind: keymap.Dir, lookups: 1, validUntil: farFuture}}
	t.next = RootID + 1
}

var farFuture = time.Unix(1<<62, 0)

// number returns the inode number of path and kind, allocating one on first sight.
func (t *inodeTable) number(path string, kind keymap.Kind) InodeID {
	k := nodeKey{path, kind}
	if id, ok := t.numbers[k]; ok {
		return id
	}
	id := t.next
	t.next++
	t.numbers[k] = id
	return id
}

// get returns the live inode with this number, or nil.
func (t *inodeTable) get(id InodeID) *inode { return t.live[id] }

// getOrCreate returns the live inode for path and kind, creating it if the kernel does not
// know it yet.
func (t *inodeTable) getOrCreate(path string, kind keymap.Kind) *inode {
	id := t.number(path, kind)
	if in := t.live[id]; in != nil {
		return in
	}
	in := &inode{id: id, path: path, kind: kind}
	t.live[id] = in
	return in
}

// forget drops n kernel references; at zero the inode is no longer live (its number stays).
func (t *inodeTable) forget(id InodeID, n uint64) {
	in := t.live[id]
	if in == nil || id == RootID {
		return
	}
	if n >= in.lookups {
		delete(t.live, id)
		return
	}
	in.lookups -= n
}
