package syncfs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/read"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Importer brings the bucket's entries and data into the local layer (impl/sync/importer).
type Importer interface {
	// EnsureDir imports the metadata of dir's entries if that was never done (Y1).
	EnsureDir(ctx context.Context, dir string) error
	// Fetch brings a file's data into the local layer now (Y2).
	Fetch(ctx context.Context, path string) error
	// ImportAttrs returns the entry at path with its object's attributes (Y3), reading them
	// now if its import has not yet.
	ImportAttrs(ctx context.Context, path string) (local.Info, error)
	// PrefetchAttrs queues the reading of an entry's attributes, without waiting for it.
	PrefetchAttrs(path string)
}

// WriteBack is the write-back engine (impl/sync/engine).
type WriteBack interface {
	// Notify: the local layer changed; plan the next upload (Y5).
	Notify()
}

// Config configures a sync-mode file system.
type Config struct {
	Layer     *local.Layer
	Importer  Importer  // nil: nothing is imported (a sync dir used offline, and tests)
	WriteBack WriteBack // nil: nobody is told
	Prefix    string
	// Read streams the data of files whose bytes are not local (Y2); Read.Store must be set
	// unless Importer is nil.
	Read   read.Config
	Clock  clock.Clock
	Logger *slog.Logger
	// ControlSocket is the mount's control socket (impl/control), answered on the root.
	ControlSocket string
	// AttrTTL is how long the kernel may keep attributes and names. The local layer answers
	// every stat, so this only bounds how soon the kernel notices a change made behind its
	// back (a remote change, C2). Default 1 s.
	AttrTTL time.Duration
}

// FS is a mounted sync-mode file system. Its methods are safe for concurrent use.
type FS struct {
	cfg   Config
	layer *local.Layer
	log   *slog.Logger

	mu      sync.Mutex
	byID    map[vfs.InodeID]*inode // GUARDED_BY(mu)
	byPath  map[string]*inode      // GUARDED_BY(mu): live paths only, every name of a linked file
	byData  map[uint64]*inode      // GUARDED_BY(mu): a non-directory's inode by its local id (Info.ID)
	nextID  vfs.InodeID            // GUARDED_BY(mu)
	handles vfs.Handles            // *fileHandle or *vfs.DirHandle

	// invalidate tells the kernel that what it cached of an inode is wrong (SetInvalidator).
	// GUARDED_BY(mu): the watcher may report a change before the adapter sets it.
	invalidate func(vfs.InodeID)
}

// SetInvalidator gives the file system a way to tell the kernel that its cached attributes
// and pages of an inode are wrong. Call it before the mount serves.
func (f *FS) SetInvalidator(fn func(vfs.InodeID)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalidate = fn
}

// RemoteChanged is told of each path a remote change replaced or removed (C2): the kernel may
// still hold the old size and pages for the attribute timeout, and a reader would then get the
// new bytes cut at the old size, or the old pages.
func (f *FS) RemoteChanged(path string) {
	f.mu.Lock()
	in, invalidate := f.byPath[path], f.invalidate
	f.mu.Unlock()
	if in != nil && invalidate != nil {
		invalidate(in.id)
	}
}

// inode is one kernel inode. Its number never changes and is never reused; its path follows
// renames. An unlinked inode keeps its last attributes for the descriptors still open on it.
// A file with hard links is one inode with several names: path is the one operations use,
// links the others; it is unlinked when the last goes.
type inode struct {
	id vfs.InodeID // constant
	// The rest is GUARDED_BY(FS.mu).
	path     string
	links    []string
	dataID   uint64      // the local layer's id of a non-directory (0: not known yet)
	lookups  vfs.Lookups // the kernel's references (Forget)
	unlinked bool
	last     vfs.Attr // what the kernel was last told (staleSize, an unlinked file's fstat)
}

// New returns the file system over cfg.Layer.
func New(cfg Config) (*FS, error) {
	if cfg.Layer == nil {
		return nil, errors.New("syncfs: no local layer")
	}
	if cfg.Importer != nil && cfg.Read.Store == nil {
		return nil, errors.New("syncfs: an importer needs a store to stream reads from")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.AttrTTL == 0 {
		cfg.AttrTTL = time.Second
	}
	root := &inode{id: vfs.RootID, path: "", lookups: 1}
	return &FS{
		cfg: cfg, layer: cfg.Layer, log: cfg.Logger,
		byID: map[vfs.InodeID]*inode{vfs.RootID: root}, byPath: map[string]*inode{"": root}, byData: map[uint64]*inode{},
		nextID: vfs.RootID + 1,
	}, nil
}

func (f *FS) notify() {
	if f.cfg.WriteBack != nil {
		f.cfg.WriteBack.Notify()
	}
}

// pathOf returns the live path of inode id.
func (f *FS) pathOf(id vfs.InodeID, op string) (string, error) {
	f.mu.Lock()
	in := f.byID[id]
	if in == nil {
		f.mu.Unlock()
		return "", vfs.NewError(op, "", vfs.CodeNotFound, "unknown inode (forgotten by the kernel)")
	}
	if in.unlinked {
		f.mu.Unlock()
		return "", vfs.NewError(op, in.path, vfs.CodeNotFound, "removed")
	}
	if len(in.links) == 0 {
		defer f.mu.Unlock()
		return in.path, nil
	}
	names, dataID := append([]string{in.path}, in.links...), in.dataID
	f.mu.Unlock()
	return f.linkedPath(in, names, dataID, op)
}

// linkedPath is pathOf for an inode with several names: the first that still names the file.
// A name can leave the file behind the mount's back (a remote change to its object, or a
// conflict of its upload, takes that name out of the link), and is then dropped here, so
// that no operation through the inode reaches the other file.
func (f *FS) linkedPath(in *inode, names []string, dataID uint64, op string) (string, error) {
	var gone []string
	path := ""
	for _, p := range names {
		if info, err := f.layer.Stat(p); err == nil && fileID(info) == dataID {
			path = p
			break
		}
		gone = append(gone, p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range gone {
		f.dropNameLocked(in, p)
	}
	if path == "" || in.unlinked {
		return "", vfs.NewError(op, names[0], vfs.CodeNotFound, "removed")
	}
	return path, nil
}

// childPath checks name and joins it to parent's path.
func (f *FS) childPath(parent vfs.InodeID, name, op string) (dir, path string, err error) {
	dir, err = f.pathOf(parent, op)
	if err != nil {
		return "", "", err
	}
	path = keymap.Join(dir, name)
	if err := vfs.CheckName(op, path, name, vfs.CodeInvalid); err != nil {
		return "", "", err
	}
	return dir, path, nil
}

// inodeForLocked returns the inode at path, making one if there is none. dataID is the
// local id of what is at path (Info.ID; 0 for a directory or when not known) and linked says
// the file has other names (Info.Nlink > 1): such a name gets the inode of the file's other
// names (hard links). Only then: a record that keeps its id under a new path without being a
// link (a conflict's move to lost+found) is another file to the kernel.
// REQUIRES: f.mu held.
func (f *FS) inodeForLocked(path string, dataID uint64, linked bool) *inode {
	if in := f.byPath[path]; in != nil {
		owner := f.byData[dataID]
		joins := linked && dataID != 0 && owner != nil && owner != in && !owner.unlinked
		switch {
		case in.dataID == dataID || len(in.links) == 0 && dataID == 0:
			return in
		case len(in.links) == 0 && !joins:
			f.setDataIDLocked(in, dataID)
			return in
		}
		// path no longer names the file in is (a remote change to this name took it out of
		// the link, or it is now a name of another linked file): the name leaves the inode.
		f.dropNameLocked(in, path)
	}
	if in := f.byData[dataID]; linked && dataID != 0 && in != nil && !in.unlinked {
		in.links = append(in.links, path)
		f.byPath[path] = in
		return in
	}
	in := &inode{id: f.nextID, path: path}
	f.nextID++
	f.byID[in.id] = in
	f.byPath[path] = in
	f.setDataIDLocked(in, dataID)
	return in
}

// entry registers one more kernel reference to path's inode and describes it.
func (f *FS) entry(info local.Info) vfs.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.inodeForLocked(info.Path, fileID(info), info.Nlink > 1)
	in.lookups.Add()
	in.last = attrOf(in.id, info)
	return vfs.Entry{Attr: in.last, Expires: f.cfg.Clock.Now().Add(f.cfg.AttrTTL)}
}

// dropPath marks the inode at path (and, for a directory, every inode below it) as removed.
// REQUIRES: f.mu held.
func (f *FS) dropPathLocked(path string) {
	for p, in := range f.byPath {
		if p == path || keymap.Below(p, path) {
			f.dropNameLocked(in, p)
		}
	}
}

// movePathsLocked makes the inodes at src and below follow a rename to dst.
// REQUIRES: f.mu held.
func (f *FS) movePathsLocked(src, dst string) {
	f.dropPathLocked(dst)
	var moved []*inode
	var from []string
	for p, in := range f.byPath {
		if p == src || keymap.Below(p, src) {
			moved, from = append(moved, in), append(from, p)
			delete(f.byPath, p)
		}
	}
	for i, in := range moved {
		to := dst + from[i][len(src):]
		in.renameName(from[i], to)
		f.byPath[to] = in
	}
}

func attrOf(id vfs.InodeID, info local.Info) vfs.Attr {
	a := vfs.Attr{Inode: id, Size: uint64(info.Size), UID: info.Attr.UID, GID: info.Attr.GID,
		Mode: os.FileMode(info.Attr.Mode & 0o777), Nlink: max(1, info.Nlink),
		Atime: info.Attr.AccessTime(), Mtime: info.Attr.Mtime, Ctime: info.Attr.ChangeTime()}
	m := info.Attr.Mode
	if m&0o4000 != 0 {
		a.Mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		a.Mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		a.Mode |= os.ModeSticky
	}
	a.Mode |= typeBits(info.Kind)
	if info.Kind == local.KindDir {
		a.Nlink = max(2, info.Nlink)
	}
	if info.Kind == local.KindCharDevice || info.Kind == local.KindBlockDevice {
		a.Rdev = info.Attr.Rdev
	}
	return a
}

// typeBits are the os.FileMode type bits of a record kind.
func typeBits(k local.Kind) os.FileMode {
	switch k {
	case local.KindDir:
		return os.ModeDir
	case local.KindSymlink:
		return os.ModeSymlink
	case local.KindFIFO:
		return os.ModeNamedPipe
	case local.KindSocket:
		return os.ModeSocket
	case local.KindCharDevice:
		return os.ModeDevice | os.ModeCharDevice
	case local.KindBlockDevice:
		return os.ModeDevice
	}
	return 0
}

// kindOfMode is the special kind mknod's mode asks for, or 0 for a regular file.
func kindOfMode(m os.FileMode) (local.Kind, bool) {
	switch {
	case m&os.ModeNamedPipe != 0:
		return local.KindFIFO, true
	case m&os.ModeSocket != 0:
		return local.KindSocket, true
	case m&os.ModeCharDevice != 0:
		return local.KindCharDevice, true
	case m&os.ModeDevice != 0:
		return local.KindBlockDevice, true
	case m&os.ModeType == 0:
		return local.KindFile, true
	}
	return 0, false
}

// localError classifies an error of the local layer, the importer or the store by vfs.Classify,
// the table both cores share, with the two causes sync mode knows more about.
func localError(op, path string, err error) error {
	if err == nil {
		return nil
	}
	var fe *vfs.Error
	if errors.As(err, &fe) {
		return err
	}
	code := vfs.Classify(err)
	switch {
	case errors.Is(err, local.ErrNoAttr): // not ErrNoData, the other ENODATA
		code = vfs.CodeNoAttr
	case errors.Is(err, s3.ErrNotFound), errors.Is(err, s3.ErrPreconditionFailed):
		// The object went away or changed under a fetch: the local view is stale, not the
		// caller's path wrong; the retry after the next import sees the new state.
		code = vfs.CodeIO
	}
	return &vfs.Error{Op: op, Path: path, Code: code, Err: err}
}

// StatFS reports the space of the disk that holds the sync dir: that is where writes go.
func (f *FS) StatFS(ctx context.Context) vfs.StatFS {
	var st syscall.Statfs_t
	if err := syscall.Statfs(f.layer.Dir(), &st); err != nil {
		return vfs.StatFS{BlockSize: 4096, MaxNameLen: keymap.MaxNameLen, IOBlockSize: 1 << 20}
	}
	return vfs.StatFS{BlockSize: uint32(st.Bsize), Blocks: st.Blocks, BlocksFree: st.Bavail,
		Inodes: st.Files, InodesFree: st.Ffree, MaxNameLen: keymap.MaxNameLen, IOBlockSize: 1 << 20}
}

// Unsupported is the error for operations sync mode does not have: fallocate.
func (f *FS) Unsupported(op string) error {
	return vfs.NewError(op, "", vfs.CodeNotSupported, op+" is not supported in sync mode")
}
