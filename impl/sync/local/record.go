package local

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// Kind is what a record is.
type Kind uint8

const (
	KindFile Kind = iota + 1
	KindDir
	KindSymlink
	// Special files: no data and no target; the record is the whole of what they are, and
	// their object is empty with the type in its metadata (Y3). The kernel keeps FIFO and
	// socket I/O local and sends device I/O to the driver, never to the mount.
	KindFIFO
	KindCharDevice
	KindBlockDevice
	KindSocket
)

// Special reports whether k is a FIFO, a device or a socket.
func (k Kind) Special() bool { return k >= KindFIFO && k <= KindSocket }

func (k Kind) String() string {
	names := [...]string{KindFile: "file", KindDir: "dir", KindSymlink: "symlink", KindFIFO: "fifo",
		KindCharDevice: "char-device", KindBlockDevice: "block-device", KindSocket: "socket"}
	if int(k) < len(names) && names[k] != "" {
		return names[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// isDir: a directory's bucket object is its marker (Y8) at DirKey, a file's and a symlink's is
// at FileKey (Y3), so a tombstone can only be folded into a new record of the same class.
func (k Kind) isDir() bool { return k == KindDir }

// Attr is the POSIX part of a record (exported with the next upload, Y3, Y7).
type Attr struct {
	Mode  uint32 // permission bits (07777); the type is Kind
	UID   uint32
	GID   uint32
	Mtime time.Time
	// Ctime is when the file last changed, data or attributes (stat's st_ctime); local only,
	// S3 has no place for it. Zero in records written before it existed: Mtime stands in.
	Ctime time.Time `json:",omitempty"`
	// Atime is the access time a program set (utimensat); zero: Mtime stands in. Local
	// only, and reads do not move it.
	Atime time.Time `json:",omitempty"`
	// Rdev is a device's number, as the kernel gives it to mknod.
	Rdev uint32 `json:",omitempty"`
	// Xattrs are the extended attributes, exported with the object's metadata (Y3).
	Xattrs map[string][]byte `json:",omitempty"`
}

// ChangeTime is st_ctime: Ctime, or Mtime for records that have none.
func (a Attr) ChangeTime() time.Time {
	if a.Ctime.IsZero() {
		return a.Mtime
	}
	return a.Ctime
}

// AccessTime is st_atime: Atime, or Mtime when none was set.
func (a Attr) AccessTime() time.Time {
	if a.Atime.IsZero() {
		return a.Mtime
	}
	return a.Atime
}

// touchParentTx gives path's directory the mtime and ctime now, as a local file system does
// when an entry is made, removed or renamed in it. Only locally: a directory's times are not
// worth a write of its marker object for every file created in it.
func touchParentTx(tx *bolt.Tx, path string, now time.Time) error {
	if path == "" {
		return nil
	}
	dir, _ := keymap.Split(path)
	r, err := getRec(tx, dir)
	if err != nil || r == nil || !r.visible() {
		return err
	}
	r.Attr.Mtime, r.Attr.Ctime = now, now
	return putRec(tx, dir, r)
}

// Info is what Stat and List report about one record.
type Info struct {
	Path   string
	Kind   Kind
	Attr   Attr
	Size   int64  // bytes of a file, length of a symlink's target, 0 for a directory
	Target string // symlink target
	ID     uint64 // names the data file; stable across renames
	State  syncrule.State
	// OriginalPath is set for files moved into lost+found (C4): the value of the extended
	// attribute syncrule.OriginalPathXattr.
	OriginalPath string
	// Imported: a directory whose bucket listing is in the layer (Y1), see ImportListing.
	Imported bool
	// AttrPending: a file imported from a listing whose Attr are still the defaults, because
	// the object's metadata (Y3) has not been read yet; SetRemoteAttr clears it.
	AttrPending bool
	// Nlink is the link count: of a file or other non-directory, its number of names (hard
	// links, Link), set by Stat, List and Link; of a directory, 2 and one per subdirectory,
	// set by Stat only (List leaves 1).
	Nlink uint32
}

// record is the stored form of one path. Tombstones (State.Deleted) stay in the nodes bucket
// at their path until the engine's delete succeeds, so that a write at the path can fold the
// delete into one PUT (syncrule: tombstone --LocalWrite--> dirty); they are invisible to
// Stat and List.
type record struct {
	Kind     Kind           `json:"k"`
	ID       uint64         `json:"id,omitempty"`
	Attr     Attr           `json:"a"`
	Target   string         `json:"t,omitempty"`
	State    syncrule.State `json:"s"`
	OrigPath string         `json:"o,omitempty"`
	// Added after format 1 shipped: absent in older records, which decode as false (a
	// directory not imported yet, a file whose attributes are known).
	Imported    bool `json:"i,omitempty"`
	AttrPending bool `json:"ap,omitempty"`
	// PendingCopy is the id of the queued OpRename whose copy will put this record's object at
	// its key (generation PendingCopyGen), while the copy's result is not recorded yet. Until
	// then the record's base does not say what the bucket will hold at the key: a rename or
	// removal of the record meanwhile queues an op chained to that copy (Op.ChainOf), which
	// learns the copy's version when it is recorded (CopyDone), and no upload is started.
	PendingCopy    uint64 `json:"pc,omitempty"`
	PendingCopyGen uint64 `json:"pcg,omitempty"`
}

func (r *record) visible() bool { return r.State.Exists }

// infoTx is r.info with a file's link count, which the ids index holds. A directory's (one
// for its entry in its parent, one for its "." and one for each subdirectory's "..", as on
// ext4) is dirLinksTx's, which Stat adds and List, answering for many entries at once, leaves
// out (Nlink 1 there).
func (r *record) infoTx(tx *bolt.Tx, path string) Info {
	info := r.info(path)
	if r.ID != 0 && r.Kind != KindDir {
		info.Nlink = max(1, linksOfID(tx, r.ID))
	}
	return info
}

// dirLinksTx is the link count of directory dir: 2 and one per subdirectory, counted in the
// dirs index, which holds directories only: a directory of many files costs nothing more.
func dirLinksTx(tx *bolt.Tx, dir string) uint32 {
	n := uint32(2)
	p := childPrefix(dir)
	c := tx.Bucket(bDirs).Cursor()
	for k, _ := c.Seek(p); k != nil && hasPrefix(k, p); k, _ = c.Next() {
		if len(k) > len(p) { // not the root's own key
			n++
		}
	}
	return n
}

func (r *record) info(path string) Info {
	size := r.State.Size
	switch r.Kind {
	case KindDir:
		size = 0
	case KindSymlink:
		size = int64(len(r.Target))
	case KindFIFO, KindCharDevice, KindBlockDevice, KindSocket:
		size = 0
	}
	return Info{Path: path, Kind: r.Kind, Attr: r.Attr, Size: size, Target: r.Target, ID: r.ID,
		State: r.State, OriginalPath: r.OrigPath, Imported: r.Imported, AttrPending: r.AttrPending, Nlink: 1}
}

// bbolt bucket names.
var (
	bMeta  = []byte("meta")  // fsid, bucket, prefix, format version, sequences
	bNodes = []byte("nodes") // nodeKey(path) -> record
	bIDs   = []byte("ids")   // data id (8 bytes) -> paths, so open handles survive renames
	bQueue = []byte("queue") // op id (8 bytes) -> Op
	// bDirs indexes the visible directories: nodeKey(path) -> empty. It counts a directory's
	// subdirectories and answers whether a path's parent is a visible directory (lookupDir),
	// so it must hold exactly the visible directories. Kept by putRec and delRec,
	// and made from the nodes when a sync dir made before it existed is opened.
	bDirs = []byte("dirs")
	// bUploads journals the multipart uploads the engine has open: upload id -> key. Created
	// on demand, so a sync dir made before it existed opens unchanged.
	bUploads = []byte("uploads")
)

// Meta keys.
var (
	kFSID    = []byte("fsid")
	kBucket  = []byte("bucket")
	kPrefix  = []byte("prefix")
	kFormat  = []byte("format")
	kLostIDs = []byte("lost-found-seq")
)

// formatVersion 2: hard links (several paths per id in the ids index) and the dirs index.
// 3: records in binary (codec.go). A format-2 sync dir opens unchanged but for the version,
// its JSON records being rewritten as they change; a format-2 binary then refuses it.
const formatVersion = "3"

// nodeKey is dir + NUL + name. NUL cannot occur in a name (K3), so the children of a
// directory are exactly the keys with prefix dir+NUL and bbolt returns them in byte order of
// the names (K6) without visiting grandchildren; the descendants of d are the keys with prefix
// d+NUL or d+"/". The root is "\x00" (dir "" and name "").
func nodeKey(path string) []byte {
	dir, name := keymap.Split(path)
	return []byte(dir + "\x00" + name)
}

func pathOfNodeKey(k []byte) string {
	s := string(k)
	i := strings.IndexByte(s, 0)
	return keymap.Join(s[:i], s[i+1:])
}

func childPrefix(dir string) []byte { return []byte(dir + "\x00") }

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func getRec(tx *bolt.Tx, path string) (*record, error) {
	v := tx.Bucket(bNodes).Get(nodeKey(path))
	if v == nil {
		return nil, nil
	}
	return decodeRec(path, v)
}

func decodeRec(path string, v []byte) (*record, error) {
	var r *record
	var err error
	if len(v) > 0 && v[0] == recBinary {
		r, err = decodeRecBinary(v)
	} else {
		r = &record{}
		err = json.Unmarshal(v, r) // formats 1 and 2
	}
	if err != nil {
		return nil, fmt.Errorf("%w: record %q: %v", ErrCorrupt, path, err)
	}
	if r.Kind < KindFile || r.Kind > KindSocket {
		return nil, fmt.Errorf("%w: record %q: unknown kind %d", ErrCorrupt, path, r.Kind)
	}
	if err := r.State.Validate(); err != nil {
		return nil, fmt.Errorf("%w: record %q: %v", ErrCorrupt, path, err)
	}
	return r, nil
}

func putRec(tx *bolt.Tx, path string, r *record) error {
	if err := tx.Bucket(bNodes).Put(nodeKey(path), encodeRec(r)); err != nil {
		return err
	}
	if err := indexDir(tx, nodeKey(path), r); err != nil {
		return err
	}
	if r.ID != 0 {
		return addIDPath(tx, r.ID, path)
	}
	return nil
}

// delRecTx removes the record at path and its name from its id's index entry. Callers go
// through Layer.delRec, which notes the removal for observers.
func delRecTx(tx *bolt.Tx, path string, r *record) error {
	if r.ID != 0 {
		if err := dropIDPath(tx, r.ID, path); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bDirs).Delete(nodeKey(path)); err != nil {
		return err
	}
	return tx.Bucket(bNodes).Delete(nodeKey(path))
}

// indexDir keeps the dirs index entry of the record r at key k. Only a directory's record can
// have one (a visible directory is never written over by another kind: that is EEXIST, and a
// rename or removal goes through delRec), so a file's write costs no index lookup.
func indexDir(tx *bolt.Tx, k []byte, r *record) error {
	switch {
	case r.Kind != KindDir:
		return nil
	case r.visible():
		return tx.Bucket(bDirs).Put(k, []byte{})
	}
	return tx.Bucket(bDirs).Delete(k)
}

// rebuildDirsIndex makes the dirs index from the records.
func rebuildDirsIndex(tx *bolt.Tx) error {
	if tx.Bucket(bDirs) != nil {
		if err := tx.DeleteBucket(bDirs); err != nil {
			return err
		}
	}
	if _, err := tx.CreateBucket(bDirs); err != nil {
		return err
	}
	return tx.Bucket(bNodes).ForEach(func(k, v []byte) error {
		r, err := decodeRec(pathOfNodeKey(k), v)
		if err != nil {
			return err
		}
		return indexDir(tx, k, r)
	})
}

// The ids index maps a record id to the paths of the records that carry it, NUL-separated
// (NUL is in no path, K3). One path is the common case; hard links (Link) share an id, and
// with it the data file, among several records, one per name. The index is what makes them
// one file: a write, a sync or an attribute change through any name changes every record of
// the id, and the data file goes with the last of them.

// pathsOfID are the paths of the records with id, in the order they were linked.
func pathsOfID(tx *bolt.Tx, id uint64) []string {
	v := tx.Bucket(bIDs).Get(u64(id))
	if v == nil {
		return nil
	}
	return strings.Split(string(v), "\x00")
}

// linksOfID is how many names id has: len(pathsOfID) without building them, as every stat
// asks.
func linksOfID(tx *bolt.Tx, id uint64) uint32 {
	v := tx.Bucket(bIDs).Get(u64(id))
	if v == nil {
		return 0
	}
	return uint32(bytes.Count(v, []byte{0})) + 1
}

// pathOfID is where the record owning data file id is now (its first name if it has
// several), or "" with ok=false.
func pathOfID(tx *bolt.Tx, id uint64) (string, bool) {
	paths := pathsOfID(tx, id)
	if len(paths) == 0 {
		return "", false
	}
	return paths[0], true
}

// shared reports whether id has a record at another path than path (a hard link).
func shared(tx *bolt.Tx, id uint64, path string) bool {
	for _, p := range pathsOfID(tx, id) {
		if p != path {
			return true
		}
	}
	return false
}

// idHasPath reports whether path is one of id's names.
func idHasPath(tx *bolt.Tx, id uint64, path string) bool {
	for _, p := range pathsOfID(tx, id) {
		if p == path {
			return true
		}
	}
	return false
}

func addIDPath(tx *bolt.Tx, id uint64, path string) error {
	paths := pathsOfID(tx, id)
	for _, p := range paths {
		if p == path {
			return nil
		}
	}
	return tx.Bucket(bIDs).Put(u64(id), []byte(strings.Join(append(paths, path), "\x00")))
}

func dropIDPath(tx *bolt.Tx, id uint64, path string) error {
	paths := pathsOfID(tx, id)
	keep := paths[:0]
	for _, p := range paths {
		if p != path {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		return tx.Bucket(bIDs).Delete(u64(id))
	}
	return tx.Bucket(bIDs).Put(u64(id), []byte(strings.Join(keep, "\x00")))
}

// eachLinkTx calls fn for the record of every name of id (the file's hard links, or its
// one record) and stores what fn changed.
func eachLinkTx(tx *bolt.Tx, id uint64, fn func(path string, r *record) error) error {
	for _, p := range pathsOfID(tx, id) {
		r, err := getRec(tx, p)
		if err != nil {
			return err
		}
		if r == nil || r.ID != id {
			return fmt.Errorf("%w: the ids index names %q for id %d, which has no such record", ErrCorrupt, p, id)
		}
		if err := fn(p, r); err != nil {
			return err
		}
		if err := putRec(tx, p, r); err != nil {
			return err
		}
	}
	return nil
}

// lookupDir checks that path's parent exists and is a directory (ENOENT / ENOTDIR as POSIX).
func lookupDir(tx *bolt.Tx, path string) error {
	if path == "" {
		return ErrExists
	}
	dir, _ := keymap.Split(path)
	// The dirs index answers for a visible directory without decoding its record: every
	// stat and lookup asks this of the parent.
	k := nodeKey(dir)
	if got, _ := tx.Bucket(bDirs).Cursor().Seek(k); bytes.Equal(got, k) {
		return nil
	}
	r, err := getRec(tx, dir)
	if err != nil {
		return err
	}
	if r == nil || !r.visible() {
		return ErrNotFound
	}
	if r.Kind != KindDir {
		return ErrNotDir
	}
	return nil
}

// visibleRec returns the record at path if a program can see it.
func visibleRec(tx *bolt.Tx, path string) (*record, error) {
	if path != "" {
		if err := lookupDir(tx, path); err != nil {
			return nil, err
		}
	}
	r, err := getRec(tx, path)
	if err != nil {
		return nil, err
	}
	if r == nil || !r.visible() {
		return nil, ErrNotFound
	}
	return r, nil
}

// visibleRecImported is visibleRec that also reports whether path's directory is imported.
// The directory's record, read for that, also says whether it is a visible directory, which
// is all lookupDir checks.
func visibleRecImported(tx *bolt.Tx, path string) (*record, bool, error) {
	if path == "" {
		r, err := visibleRec(tx, path)
		return r, false, err
	}
	dir, _ := keymap.Split(path)
	d, err := getRec(tx, dir)
	if err != nil {
		return nil, false, err
	}
	if d == nil || !d.visible() || d.Kind != KindDir {
		r, err := visibleRec(tx, path) // its error says what the parent is
		return r, false, err
	}
	r, err := getRec(tx, path)
	if err == nil && (r == nil || !r.visible()) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, d.Imported, err
	}
	return r, d.Imported, nil
}

// hasChildren reports whether dir has a visible child. Tombstones do not count: a directory
// whose files were deleted is empty to programs even while their deletes are owed.
func hasChildren(tx *bolt.Tx, dir string) (bool, error) {
	c := tx.Bucket(bNodes).Cursor()
	p := childPrefix(dir)
	for k, v := c.Seek(p); k != nil && strings.HasPrefix(string(k), string(p)); k, v = c.Next() {
		if dir == "" && len(k) == 1 {
			continue // the root's own record
		}
		r, err := decodeRec(pathOfNodeKey(k), v)
		if err != nil {
			return false, err
		}
		if r.visible() {
			return true, nil
		}
	}
	return false, nil
}
