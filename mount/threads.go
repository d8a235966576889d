package mount

import (
	"context"
	"syscall"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
	"golang.org/x/sys/unix"
)

// limited bounds how many FUSE operations inner handles at once (--max-threads, like
// Mountpoint's FUSE worker threads), and tells the observer, if any, of each operation's
// time and result. Every operation runs on its own goroutine (opServer); past the bound, an
// operation's goroutine waits here, in arrival order as far as the Go scheduler goes. Forgets
// are not counted: opServer calls ForgetInode on the goroutine that reads /dev/fuse, which
// must never wait.
type limited struct {
	fuseutil.FileSystem
	slots chan struct{} // nil: no bound
	obs   Observer      // nil: nothing observed
}

// Observer is told of every FUSE operation answered (the metrics package implements it).
type Observer interface {
	FUSEOp(op string, d time.Duration, errno string)
	FUSEBytes(n int, write bool)
}

// newLimited bounds inner at n operations at once (0: no bound) and reports to obs (nil:
// nothing).
func newLimited(inner fuseutil.FileSystem, n int, obs Observer) *limited {
	l := &limited{FileSystem: inner, obs: obs}
	if n > 0 {
		l.slots = make(chan struct{}, n)
	}
	return l
}

// run calls f once a slot is free. An interrupt does not end the wait: the kernel sends one
// whenever the calling thread takes a signal (Go's runtime signals its threads all the time),
// and answering EINTR there would fail a close or a readdir that the core would have
// completed. The operation then runs to completion, as without the bound: the adapter detaches
// its context from the kernel's interrupt (uninterruptible).
func run[Op any](l *limited, name string, ctx context.Context, op Op, f func(context.Context, Op) error) error {
	if l.slots != nil {
		l.slots <- struct{}{}
		defer func() { <-l.slots }()
	}
	if l.obs == nil {
		return f(ctx, op)
	}
	start := time.Now()
	err := f(ctx, op)
	errno := ""
	if err != nil {
		e, ok := err.(syscall.Errno) // the adapter answers errnos already
		if !ok {
			e = Errno(err)
		}
		errno = unix.ErrnoName(e)
	}
	l.obs.FUSEOp(name, time.Since(start), errno)
	switch o := any(op).(type) {
	case *fuseops.ReadFileOp:
		l.obs.FUSEBytes(o.BytesRead, false)
	case *fuseops.WriteFileOp:
		if err == nil {
			l.obs.FUSEBytes(len(o.Data), true)
		}
	}
	return err
}

func (l *limited) StatFS(ctx context.Context, op *fuseops.StatFSOp) error {
	return run(l, "StatFS", ctx, op, l.FileSystem.StatFS)
}
func (l *limited) LookUpInode(ctx context.Context, op *fuseops.LookUpInodeOp) error {
	return run(l, "LookUpInode", ctx, op, l.FileSystem.LookUpInode)
}
func (l *limited) GetInodeAttributes(ctx context.Context, op *fuseops.GetInodeAttributesOp) error {
	return run(l, "GetInodeAttributes", ctx, op, l.FileSystem.GetInodeAttributes)
}
func (l *limited) SetInodeAttributes(ctx context.Context, op *fuseops.SetInodeAttributesOp) error {
	return run(l, "SetInodeAttributes", ctx, op, l.FileSystem.SetInodeAttributes)
}
func (l *limited) MkDir(ctx context.Context, op *fuseops.MkDirOp) error {
	return run(l, "MkDir", ctx, op, l.FileSystem.MkDir)
}
func (l *limited) MkNode(ctx context.Context, op *fuseops.MkNodeOp) error {
	return run(l, "MkNode", ctx, op, l.FileSystem.MkNode)
}
func (l *limited) CreateFile(ctx context.Context, op *fuseops.CreateFileOp) error {
	return run(l, "CreateFile", ctx, op, l.FileSystem.CreateFile)
}
func (l *limited) CreateLink(ctx context.Context, op *fuseops.CreateLinkOp) error {
	return run(l, "CreateLink", ctx, op, l.FileSystem.CreateLink)
}
func (l *limited) CreateSymlink(ctx context.Context, op *fuseops.CreateSymlinkOp) error {
	return run(l, "CreateSymlink", ctx, op, l.FileSystem.CreateSymlink)
}
func (l *limited) Rename(ctx context.Context, op *fuseops.RenameOp) error {
	return run(l, "Rename", ctx, op, l.FileSystem.Rename)
}
func (l *limited) RmDir(ctx context.Context, op *fuseops.RmDirOp) error {
	return run(l, "RmDir", ctx, op, l.FileSystem.RmDir)
}
func (l *limited) Unlink(ctx context.Context, op *fuseops.UnlinkOp) error {
	return run(l, "Unlink", ctx, op, l.FileSystem.Unlink)
}
func (l *limited) OpenDir(ctx context.Context, op *fuseops.OpenDirOp) error {
	return run(l, "OpenDir", ctx, op, l.FileSystem.OpenDir)
}
func (l *limited) ReadDir(ctx context.Context, op *fuseops.ReadDirOp) error {
	return run(l, "ReadDir", ctx, op, l.FileSystem.ReadDir)
}
func (l *limited) ReadDirPlus(ctx context.Context, op *fuseops.ReadDirPlusOp) error {
	return run(l, "ReadDirPlus", ctx, op, l.FileSystem.ReadDirPlus)
}
func (l *limited) ReleaseDirHandle(ctx context.Context, op *fuseops.ReleaseDirHandleOp) error {
	return run(l, "ReleaseDirHandle", ctx, op, l.FileSystem.ReleaseDirHandle)
}
func (l *limited) OpenFile(ctx context.Context, op *fuseops.OpenFileOp) error {
	return run(l, "OpenFile", ctx, op, l.FileSystem.OpenFile)
}
func (l *limited) ReadFile(ctx context.Context, op *fuseops.ReadFileOp) error {
	return run(l, "ReadFile", ctx, op, l.FileSystem.ReadFile)
}
func (l *limited) WriteFile(ctx context.Context, op *fuseops.WriteFileOp) error {
	return run(l, "WriteFile", ctx, op, l.FileSystem.WriteFile)
}
func (l *limited) SyncFile(ctx context.Context, op *fuseops.SyncFileOp) error {
	return run(l, "SyncFile", ctx, op, l.FileSystem.SyncFile)
}
func (l *limited) FlushFile(ctx context.Context, op *fuseops.FlushFileOp) error {
	return run(l, "FlushFile", ctx, op, l.FileSystem.FlushFile)
}
func (l *limited) ReleaseFileHandle(ctx context.Context, op *fuseops.ReleaseFileHandleOp) error {
	return run(l, "ReleaseFileHandle", ctx, op, l.FileSystem.ReleaseFileHandle)
}
func (l *limited) ReadSymlink(ctx context.Context, op *fuseops.ReadSymlinkOp) error {
	return run(l, "ReadSymlink", ctx, op, l.FileSystem.ReadSymlink)
}
func (l *limited) RemoveXattr(ctx context.Context, op *fuseops.RemoveXattrOp) error {
	return run(l, "RemoveXattr", ctx, op, l.FileSystem.RemoveXattr)
}
func (l *limited) GetXattr(ctx context.Context, op *fuseops.GetXattrOp) error {
	return run(l, "GetXattr", ctx, op, l.FileSystem.GetXattr)
}
func (l *limited) ListXattr(ctx context.Context, op *fuseops.ListXattrOp) error {
	return run(l, "ListXattr", ctx, op, l.FileSystem.ListXattr)
}
func (l *limited) SetXattr(ctx context.Context, op *fuseops.SetXattrOp) error {
	return run(l, "SetXattr", ctx, op, l.FileSystem.SetXattr)
}
func (l *limited) Fallocate(ctx context.Context, op *fuseops.FallocateOp) error {
	return run(l, "Fallocate", ctx, op, l.FileSystem.Fallocate)
}
func (l *limited) SyncFS(ctx context.Context, op *fuseops.SyncFSOp) error {
	return run(l, "SyncFS", ctx, op, l.FileSystem.SyncFS)
}
