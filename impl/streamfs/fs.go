package streamfs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mount-s3/mount-s3/impl/vfs"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/fetchahead"
	"github.com/mount-s3/mount-s3/impl/read"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/write"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Config is everything the file system depends on.
type Config struct {
	// Dependencies.
	Store  s3.Store
	Clock  clock.Clock  // defaults to the wall clock
	Logger *slog.Logger // defaults to discarding
	// ControlSocket is the mount's control socket (impl/control), answered on the root.
	ControlSocket string
	// FetchAhead, if set, fetches small files whole at open and ahead of a program reading a
	// directory's files in order (small.go).
	FetchAhead *fetchahead.Cache

	// Prefix is the mount prefix (K8): empty or ending in '/'.
	Prefix string

	// S9: attributes that S3 does not store.
	UID, GID uint32
	FileMode os.FileMode // permission bits of files, default 0644
	DirMode  os.FileMode // permission bits of directories, default 0755

	// S3: how long metadata may be served without asking the store again, for names that
	// exist (MetadataTTL) and for names that do not (NegativeTTL).
	MetadataTTL time.Duration
	NegativeTTL time.Duration

	// S6: overwriting existing objects (with O_TRUNC) and deleting them are off by default.
	AllowOverwrite bool
	AllowDelete    bool
	// Upload configures the streaming write path and Read the prefetcher; their Store is set
	// by New.
	Upload write.Config
	Read   read.Config
}

// FS is the file system. All methods are safe for concurrent use.
type FS struct {
	// Dependencies.
	store  s3.Store
	clock  clock.Clock
	log    *slog.Logger
	prefix string

	// Constant data.
	cfg     Config
	mounted time.Time // mtime of directories, which S3 does not have

	// Mutable state.
	mu sync.Mutex
	// inodes holds the numbers and cached metadata of every path the kernel knows. GUARDED_BY(mu)
	inodes inodeTable
	// negative remembers names that did not exist, until the time given. GUARDED_BY(mu)
	negative        map[string]time.Time
	negativeSweepAt int // GUARDED_BY(mu)
	// dirLists is what lookups know of directories' listings (dirlist.go). GUARDED_BY(mu)
	dirLists map[string]*dirList
	// walkDirs and ahead are what readdirs know of a walk, and the listings made ahead of it
	// (walk.go). GUARDED_BY(mu)
	walkDirs   map[string]*walkDir
	ahead      map[string]*aheadList
	aheadSlots chan struct{} // one per listing made ahead running
	// changed: names this mount made, committed or removed lately, and when (knownLocked).
	// GUARDED_BY(mu)
	changed        map[string]time.Time
	changedSweepAt int // GUARDED_BY(mu)
	// orders and scans are what opens of small files know of their directories (small.go).
	// GUARDED_BY(mu)
	orders map[string]*fileOrder
	scans  map[string]*dirScan
	// local holds the local inodes (mkdir'd directories, files being written) by path. GUARDED_BY(mu)
	local map[string]*inode
	// handles are the open files (*readHandle, *writeHandle) and directories
	// (*vfs.DirHandle). Changed only under mu, so that what holds mu sees them settled.
	handles vfs.Handles
	gens    uint64 // GUARDED_BY(mu): the last generation given (Entry.Generation)

	// Counters for `mount-s3 status`: uploads completed and failed, and the last failure.
	uploads, uploadFailures atomic.Uint64
	// uploadsStarted counts write handles opened: those not yet completed or failed are the
	// uploads in flight (UploadStats).
	uploadsStarted atomic.Uint64
	lastError      atomic.Pointer[failure]

	// invalidate tells the kernel that what it cached of an inode is wrong; set once by the
	// adapter before the mount serves (SetInvalidator), a no-op until then.
	invalidate func(vfs.InodeID)
}

// SetInvalidator gives the file system a way to tell the kernel that its cached attributes
// and pages of an inode are wrong. Call it before the mount serves.
func (f *FS) SetInvalidator(fn func(vfs.InodeID)) { f.invalidate = fn }

// New builds a file system over cfg.Store. It does not talk to the store.
func New(cfg Config) (*FS, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("fs: no store")
	}
	if err := keymap.ValidatePrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.FileMode == 0 {
		cfg.FileMode = 0o644
	}
	if cfg.DirMode == 0 {
		cfg.DirMode = 0o755
	}
	cfg.Upload.Store = cfg.Store
	cfg.Read.Store = cfg.Store
	f := &FS{
		store:    cfg.Store,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		prefix:   cfg.Prefix,
		cfg:      cfg,
		mounted:  cfg.Clock.Now(),
		negative: map[string]time.Time{},
		dirLists: map[string]*dirList{},
		walkDirs: map[string]*walkDir{}, ahead: map[string]*aheadList{}, aheadSlots: make(chan struct{}, walkParallel),
		orders: map[string]*fileOrder{}, scans: map[string]*dirScan{},
		changed: map[string]time.Time{}, changedSweepAt: sweepMin, negativeSweepAt: sweepMin,
		local: map[string]*inode{},
	}
	f.inodes.init(f.clock.Now)
	return f, nil
}

// Prefix returns the mount prefix.
func (f *FS) Prefix() string { return f.prefix }

// attrOf builds the attributes of an inode from its cached metadata (S9).
// LOCKS_REQUIRED(f.mu)
func (f *FS) attrOf(in *inode) vfs.Attr {
	a := vfs.Attr{Inode: in.id, UID: f.cfg.UID, GID: f.cfg.GID, Nlink: 1}
	if in.kind == keymap.Dir {
		a.Mode = os.ModeDir | f.cfg.DirMode
		a.Nlink = 2
		a.Mtime = f.mounted
	} else {
		a.Mode = f.cfg.FileMode
		a.Size = uint64(in.size)
		a.Mtime = in.mtime
		if in.writer != nil {
			a.Size = uint64(in.writer.size())
		}
	}
	a.Atime, a.Ctime = a.Mtime, a.Mtime
	return a
}

// addHandle registers h and returns its id.
// LOCKS_REQUIRED(f.mu)
func (f *FS) addHandle(h any) vfs.HandleID { return f.handles.Add(h) }

// StatFS returns file-system statistics.
func (f *FS) StatFS(ctx context.Context) vfs.StatFS {
	const blocks = 1 << 40 // 4 PiB in 4 KiB blocks
	return vfs.StatFS{BlockSize: 4096, Blocks: blocks, BlocksFree: blocks, Inodes: 1 << 40, InodesFree: 1 << 40,
		MaxNameLen: keymap.MaxNameLen, IOBlockSize: 1 << 20}
}
