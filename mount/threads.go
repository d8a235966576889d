package mount

import (
	"context"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
)

// limited bounds how many FUSE operations inner handles at once (--max-threads, like
// Mountpoint's FUSE worker threads). jacobsa/fuse runs every operation on its own goroutine;
// past the bound, an operation's goroutine waits here, in arrival order as far as the Go
// scheduler goes. Forgets are not counted: the
// library calls ForgetInode on the goroutine that reads /dev/fuse, which must never wait.
type limited struct {
	fuseutil.FileSystem
	slots chan struct{}
}

func newLimited(inner fuseutil.FileSystem, n int) *limited {
	return &limited{FileSystem: inner, slots: make(chan struct{}, n)}
}

// run calls f once a slot is free. An interrupt does not end the wait: the kernel sends one
// whenever the calling thread takes a signal (Go's runtime signals its threads all the time),
// and answering EINTR there would fail a close or a readdir that the core would have
// completed; the operation runs, and sees its canceled context, as without the bound.
func run[Op any](l *limited, ctx context.Context, op Op, f func(context.Context, Op) error) error {
	l.slots <- struct{}{}
	defer func() { <-l.slots }()
	return f(ctx, op)
}

func (l *limited) StatFS(ctx context.Context, op *fuseops.StatFSOp) error {
	return run(l, ctx, op, l.FileSystem.StatFS)
}
func (l *limited) LookUpInode(ctx context.Context, op *fuseops.LookUpInodeOp) error {
	return run(l, ctx, op, l.FileSystem.LookUpInode)
}
func (l *limited) GetInodeAttributes(ctx context.Context, op *fuseops.GetInodeAttributesOp) error {
	return run(l, ctx, op, l.FileSystem.GetInodeAttributes)
}
func (l *limited) SetInodeAttributes(ctx context.Context, op *fuseops.SetInodeAttributesOp) error {
	return run(l, ctx, op, l.FileSystem.SetInodeAttributes)
}
func (l *limited) MkDir(ctx context.Context, op *fuseops.MkDirOp) error {
	return run(l, ctx, op, l.FileSystem.MkDir)
}
func (l *limited) MkNode(ctx context.Context, op *fuseops.MkNodeOp) error {
	return run(l, ctx, op, l.FileSystem.MkNode)
}
func (l *limited) CreateFile(ctx context.Context, op *fuseops.CreateFileOp) error {
	return run(l, ctx, op, l.FileSystem.CreateFile)
}
func (l *limited) CreateLink(ctx context.Context, op *fuseops.CreateLinkOp) error {
	return run(l, ctx, op, l.FileSystem.CreateLink)
}
func (l *limited) CreateSymlink(ctx context.Context, op *fuseops.CreateSymlinkOp) error {
	return run(l, ctx, op, l.FileSystem.CreateSymlink)
}
func (l *limited) Rename(ctx context.Context, op *fuseops.RenameOp) error {
	return run(l, ctx, op, l.FileSystem.Rename)
}
func (l *limited) RmDir(ctx context.Context, op *fuseops.RmDirOp) error {
	return run(l, ctx, op, l.FileSystem.RmDir)
}
func (l *limited) Unlink(ctx context.Context, op *fuseops.UnlinkOp) error {
	return run(l, ctx, op, l.FileSystem.Unlink)
}
func (l *limited) OpenDir(ctx context.Context, op *fuseops.OpenDirOp) error {
	return run(l, ctx, op, l.FileSystem.OpenDir)
}
func (l *limited) ReadDir(ctx context.Context, op *fuseops.ReadDirOp) error {
	return run(l, ctx, op, l.FileSystem.ReadDir)
}
func (l *limited) ReadDirPlus(ctx context.Context, op *fuseops.ReadDirPlusOp) error {
	return run(l, ctx, op, l.FileSystem.ReadDirPlus)
}
func (l *limited) ReleaseDirHandle(ctx context.Context, op *fuseops.ReleaseDirHandleOp) error {
	return run(l, ctx, op, l.FileSystem.ReleaseDirHandle)
}
func (l *limited) OpenFile(ctx context.Context, op *fuseops.OpenFileOp) error {
	return run(l, ctx, op, l.FileSystem.OpenFile)
}
func (l *limited) ReadFile(ctx context.Context, op *fuseops.ReadFileOp) error {
	return run(l, ctx, op, l.FileSystem.ReadFile)
}
func (l *limited) WriteFile(ctx context.Context, op *fuseops.WriteFileOp) error {
	return run(l, ctx, op, l.FileSystem.WriteFile)
}
func (l *limited) SyncFile(ctx context.Context, op *fuseops.SyncFileOp) error {
	return run(l, ctx, op, l.FileSystem.SyncFile)
}
func (l *limited) FlushFile(ctx context.Context, op *fuseops.FlushFileOp) error {
	return run(l, ctx, op, l.FileSystem.FlushFile)
}
func (l *limited) ReleaseFileHandle(ctx context.Context, op *fuseops.ReleaseFileHandleOp) error {
	return run(l, ctx, op, l.FileSystem.ReleaseFileHandle)
}
func (l *limited) ReadSymlink(ctx context.Context, op *fuseops.ReadSymlinkOp) error {
	return run(l, ctx, op, l.FileSystem.ReadSymlink)
}
func (l *limited) RemoveXattr(ctx context.Context, op *fuseops.RemoveXattrOp) error {
	return run(l, ctx, op, l.FileSystem.RemoveXattr)
}
func (l *limited) GetXattr(ctx context.Context, op *fuseops.GetXattrOp) error {
	return run(l, ctx, op, l.FileSystem.GetXattr)
}
func (l *limited) ListXattr(ctx context.Context, op *fuseops.ListXattrOp) error {
	return run(l, ctx, op, l.FileSystem.ListXattr)
}
func (l *limited) SetXattr(ctx context.Context, op *fuseops.SetXattrOp) error {
	return run(l, ctx, op, l.FileSystem.SetXattr)
}
func (l *limited) Fallocate(ctx context.Context, op *fuseops.FallocateOp) error {
	return run(l, ctx, op, l.FileSystem.Fallocate)
}
func (l *limited) SyncFS(ctx context.Context, op *fuseops.SyncFSOp) error {
	return run(l, ctx, op, l.FileSystem.SyncFS)
}
