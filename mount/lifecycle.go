package mount

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"

	"github.com/mount-s3/mount-s3/impl/vfs"
)

// Options are the kernel-facing settings of a mount.
type Options struct {
	FSName     string // shown in /proc/mounts, e.g. "mount-s3" or the bucket name
	ReadOnly   bool
	AllowOther bool // other users may access the mount
	Logger     *slog.Logger
	// DebugFUSE logs every kernel operation (very verbose).
	DebugFUSE bool
	// DefaultPermissions makes the kernel check each access against the mode and owner the
	// core reports, as for a local file system (sync mode keeps real modes and owners, Y7).
	DefaultPermissions bool
	// DirectReads opens every read-only file with direct I/O (FOPEN_DIRECT_IO): each read(2)
	// reaches the mount as one request of the caller's size (up to 1 MiB), instead of
	// readahead requests whose data the kernel also copies into and out of the page cache;
	// about 2x the sequential throughput on the bench. Off by default: with
	// it a shared mapping (mmap MAP_SHARED) of the file fails with ENODEV, which breaks
	// numpy.memmap, Arrow and safetensors loaders, and jacobsa/fuse cannot ask the kernel for
	// FUSE_DIRECT_IO_ALLOW_MMAP. A file opened with O_DIRECT always gets direct I/O.
	DirectReads bool
	// MaxThreads bounds the FUSE operations handled at once (--max-threads); the others
	// wait in line. 0 means no bound.
	MaxThreads int
	// Observe, if set, is told of every operation answered (metrics).
	Observe Observer
}

// Mounted is a live mount.
type Mounted struct {
	dir      string
	mfs      *fuse.MountedFileSystem
	external bool // dir is /dev/fd/N (External)
}

// ErrBusy is returned by Unmount while files in the mount are open or a process has its
// working directory in it.
var ErrBusy = errors.New("mount is busy: files are open or a process is using it")

// Mount mounts core at dir. It returns once the kernel has accepted the mount.
//
// dir may be /dev/fd/N: a FUSE connection the caller opened and mounted itself (Mountpoint's
// Kubernetes CSI driver does so). The mount then serves that connection, never mounts or
// unmounts anything, and ends when the caller unmounts.
func Mount(dir string, core FileSystem, opts Options) (*Mounted, error) {
	external := strings.HasPrefix(dir, "/dev/fd/")
	if !external {
		var err error
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
		if mounted, err := IsMountPoint(dir); err == nil && mounted {
			return nil, fmt.Errorf("mount point %s is already mounted", dir)
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var ffs fuseutil.FileSystem = &adapter{fs: core, log: logger, directReads: opts.DirectReads}
	if opts.MaxThreads > 0 || opts.Observe != nil {
		ffs = newLimited(ffs, opts.MaxThreads, opts.Observe)
	}
	notifier, served := fuse.NewNotifier(), make(chan struct{})
	if c, ok := core.(Invalidating); ok {
		c.SetInvalidator((&invalidator{n: notifier, served: served}).invalidate)
	}
	server := fuse.NewServerWithNotifier(notifier, &opServer{fs: ffs, log: logger, served: served})
	cfg := &fuse.MountConfig{
		FSName:                  opts.FSName,
		Subtype:                 "mount-s3",
		ReadOnly:                opts.ReadOnly,
		ErrorLogger:             log.New(&slogWriter{logger}, "fuse: ", 0),
		DisableWritebackCaching: true,
		EnableParallelDirOps:    true,
		// O_TRUNC arrives with the open instead of as a separate truncate, which streaming
		// mode could not honour (S6).
		EnableAtomicTrunc: true,
		// The kernel may send a file's readahead requests together instead of one after
		// another; impl/read takes them in any order. The bench's FUSE floor row reads about
		// 1.8x faster with it, and the mount's seq read about 1.4x.
		EnableAsyncReads: true,
		// `ls -l` gets names and attributes together (adapter.ReadDirPlus). Not the
		// kernel's "auto" variant: it sends plain READDIR after the first buffer unless a
		// stat came in between, and ls reads the whole directory before its first stat.
		EnableReaddirplus: true,
		Options:           map[string]string{},
	}
	if opts.AllowOther {
		cfg.Options["allow_other"] = ""
	}
	if opts.DefaultPermissions {
		cfg.Options["default_permissions"] = ""
	}
	if opts.DebugFUSE {
		cfg.DebugLogger = log.New(&slogWriter{logger}, "fuse-debug: ", 0)
	}
	mfs, err := fuse.Mount(dir, server, cfg)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	return &Mounted{dir: dir, mfs: mfs, external: external}, nil
}

// Dir returns the mount point.
func (m *Mounted) Dir() string { return m.dir }

// External reports whether the mount serves a /dev/fd/N connection that its caller mounted.
func (m *Mounted) External() bool { return m.external }

// ErrExternal is returned by Unmount of a mount on /dev/fd/N: the caller that mounted the
// descriptor unmounts it.
var ErrExternal = errors.New("the mount point is a FUSE descriptor its caller mounted; the caller unmounts it")

// Join waits until the mount is unmounted (by Unmount, or by `umount` from outside).
func (m *Mounted) Join(ctx context.Context) error { return m.mfs.Join(ctx) }

// Unmount asks the kernel to unmount. It fails with ErrBusy while the mount is in use.
// Root unmounts with umount(2) directly; other users go through fusermount.
func (m *Mounted) Unmount() error {
	if m.external {
		return fmt.Errorf("unmount %s: %w", m.dir, ErrExternal)
	}
	err := syscall.Unmount(m.dir, 0)
	if errors.Is(err, syscall.EPERM) {
		err = fuse.Unmount(m.dir)
	}
	if errors.Is(err, syscall.EBUSY) || (err != nil && strings.Contains(err.Error(), "busy")) {
		return fmt.Errorf("unmount %s: %w", m.dir, ErrBusy)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", m.dir, err)
	}
	return nil
}

// IsMountPoint reports whether dir is a mount point, from /proc/self/mountinfo.
func IsMountPoint(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// slogWriter sends jacobsa/fuse's log lines to the product's logger.
type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.l.Info(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Invalidating is a core that can tell when the kernel's cached attributes and pages of an
// inode no longer describe it (a failed write that reverts a file to what the bucket holds, a
// remote change in sync mode), so that no read is cut short by a size the file does not have.
type Invalidating interface {
	SetInvalidator(func(vfs.InodeID))
}

// invalidator passes the core's invalidations to the kernel. Each waits until the kernel has
// applied it, so that a core can invalidate before it answers an operation, but at most
// invalidateWait. Once the connection has ended (served closed) nothing is sent: jacobsa's
// notifier would wait for ever.
type invalidator struct {
	n      *fuse.Notifier
	served <-chan struct{}
}

const invalidateWait = time.Second

func (v *invalidator) invalidate(id vfs.InodeID) {
	select {
	case <-v.served:
		return
	default:
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The notifier's loop ends with the connection: give up then instead of waiting.
		sent := make(chan struct{})
		go func() {
			v.n.InvalidateInode(fuseops.InodeID(id), 0, 0) // ENOENT: the kernel has already forgotten it
			close(sent)
		}()
		select {
		case <-sent:
		case <-v.served:
		}
	}()
	select {
	case <-done:
	case <-time.After(invalidateWait):
	}
}
