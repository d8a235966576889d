package streamfs

import (
	"hash/fnv"
	"math"
	"time"

	"github.com/mount-s3/mount-s3/impl/vfs"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// inode is one file or directory the kernel knows, or one a listing described whose metadata
// is still fresh (lookups 0).
type inode struct {
	// Constant data.
	id   vfs.InodeID
	path string // below the mount root, "" for the root
	kind keymap.Kind

	// Mutable state, GUARDED_BY(FS.mu).
	lookups vfs.Lookups // the kernel's lookup count; the inode is dropped at zero
	size    int64
	mtime   time.Time
	etag    string
	// validUntil is when the cached metadata must be checked with the store again (S3).
	validUntil stamp
	// metaAt is when what the mount knows of the inode was true: the start of the lookup or
	// listing that said it, or the time this mount wrote it or found it stale. An answer
	// that started earlier never replaces it (setMetaLocked).
	metaAt stamp
	// local: a directory made by mkdir that may not exist in the bucket (S7), or a file
	// being written whose object does not exist yet. Local inodes are answered without
	// asking the store and are listed in their parent.
	local bool
	// writer is the open write handle of a file being written (S2, S4), or nil.
	writer *writeHandle
	// gen is the number's generation (Entry.Generation): bumped when a file is created while
	// the kernel still holds this number for one that is gone.
	gen uint64
}

// nodeKey names an inode: a path that was a file and is now a directory is a different inode,
// because the kernel cannot change the type of an inode it knows.
type nodeKey struct {
	path string
	kind keymap.Kind
}

// inodeTable gives inode numbers that are stable for the life of the mount (S9) without
// remembering every path ever seen: a path and kind's number is derived from them (a 63-bit
// hash), so the same path and kind get the same number after the kernel forgot the inode,
// and the table holds only the live inodes: those the kernel holds, and those a listing
// described whose metadata is fresh, dropped once it is stale (sweep). Two keys whose hashes
// meet while both are live cannot share a number: the later one takes the next free number,
// remembered in moved (about one key in 2^63/n for n live keys; see S9).
type inodeTable struct {
	live  map[vfs.InodeID]*inode
	byKey map[nodeKey]*inode
	moved map[nodeKey]vfs.InodeID
	// sweepAt: the next getOrCreate that finds this many live inodes drops the stale ones.
	sweepAt int
	now     func() time.Time
}

// sweepMin is the fewest live inodes worth a sweep.
const sweepMin = 4096

func (t *inodeTable) init(now func() time.Time) {
	root := &inode{id: vfs.RootID, kind: keymap.Dir, lookups: 1, validUntil: farFuture}
	t.live = map[vfs.InodeID]*inode{vfs.RootID: root}
	t.byKey = map[nodeKey]*inode{{"", keymap.Dir}: root}
	t.moved = map[nodeKey]vfs.InodeID{}
	t.sweepAt, t.now = sweepMin, now
}

// farFuture: metadata that never expires (the root, a local directory).
const farFuture = stamp(math.MaxInt64)

// stamp is an instant in Unix nanoseconds. An inode keeps two: as time.Time they were 48 of
// its 160 bytes and two pointers for the collector to scan, on each of the million inodes
// `ls -l` of a directory of a million entries leaves live.
type stamp int64

func stampOf(t time.Time) stamp { return stamp(t.UnixNano()) }

// after reports whether s is later than t.
func (s stamp) after(t time.Time) bool { return s > stampOf(t) }

// hashNumber is the number a key gets unless another live key has it: FNV-1a over the kind and
// the path, with the top bit clear, never 0 (invalid) or the root's.
func hashNumber(k nodeKey) vfs.InodeID {
	h := fnv.New64a()
	h.Write([]byte{byte(k.kind)})
	h.Write([]byte(k.path))
	id := vfs.InodeID(h.Sum64() >> 1)
	if id <= vfs.RootID {
		id += vfs.RootID + 1
	}
	return id
}

// number returns the inode number of path and kind: its live inode's, or the one it gets.
func (t *inodeTable) number(path string, kind keymap.Kind) vfs.InodeID {
	k := nodeKey{path, kind}
	if in := t.byKey[k]; in != nil {
		return in.id
	}
	id, ok := t.moved[k]
	if !ok {
		id = hashNumber(k)
	}
	for {
		in := t.live[id]
		if in == nil || (in.path == path && in.kind == kind) {
			break
		}
		// Another live key has this number: take the next free one, and remember it so the
		// key keeps it.
		id++
		if id <= vfs.RootID {
			id = vfs.RootID + 1
		}
		t.moved[k] = id
	}
	return id
}

// get returns the live inode with this number, or nil.
func (t *inodeTable) get(id vfs.InodeID) *inode { return t.live[id] }

// lookup returns the live inode of path and kind, or nil.
func (t *inodeTable) lookup(path string, kind keymap.Kind) *inode {
	return t.byKey[nodeKey{path, kind}]
}

// getOrCreate returns the live inode for path and kind, creating it if there is none.
func (t *inodeTable) getOrCreate(path string, kind keymap.Kind) *inode {
	k := nodeKey{path, kind}
	if in := t.byKey[k]; in != nil {
		return in
	}
	if len(t.live) >= t.sweepAt {
		t.sweep()
	}
	in := &inode{id: t.number(path, kind), path: path, kind: kind}
	t.live[in.id] = in
	t.byKey[k] = in
	return in
}

// drop removes a live inode (its number stays its key's).
func (t *inodeTable) drop(in *inode) {
	delete(t.live, in.id)
	delete(t.byKey, nodeKey{in.path, in.kind})
}

// forget drops n kernel references. At zero the inode leaves the table (its number stays),
// unless it is local, being written, or its metadata is fresh: a listing recorded its name
// there, and a lookup that finds no inode takes the listing's silence for absence
// (absentFromListingLocked). The sweep drops it once stale.
func (t *inodeTable) forget(id vfs.InodeID, n uint64) {
	in := t.live[id]
	if in == nil || id == vfs.RootID {
		return
	}
	if !in.lookups.Forget(n) {
		return
	}
	if !in.local && in.writer == nil && !in.validUntil.after(t.now()) {
		t.drop(in)
	}
}

// sweep drops the inodes nobody holds (no kernel reference, not local, not being written)
// whose metadata is stale: what a listing recorded for lookups that never came. The live
// table is then bounded by what the kernel holds plus what the metadata TTL keeps fresh.
func (t *inodeTable) sweep() {
	now := t.now()
	for _, in := range t.live {
		if in.lookups == 0 && !in.local && in.writer == nil && in.id != vfs.RootID && !in.validUntil.after(now) {
			t.drop(in)
		}
	}
	t.sweepAt = max(sweepMin, 2*len(t.live))
}

// Inodes returns how many inodes the file system holds now (the kernel's, local ones and
// those with fresh metadata), for metrics and tests.
func (f *FS) Inodes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inodes.live)
}
