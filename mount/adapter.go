// Package mount is the thin adapter between the Linux kernel's FUSE protocol (through
// github.com/jacobsa/fuse) and the file-system core in impl/fs: it translates each kernel
// operation into one fs call, errors into errnos through one table, and owns the mount's
// lifecycle. It makes no decision of its own; nothing else in the product imports jacobsa/fuse.
package mount

import (
	"context"
	"log/slog"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"

	"github.com/mount-s3/mount-s3/impl/fs"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// adapter implements fuseutil.FileSystem over an *fs.FS. Operations it does not implement
// answer ENOSYS through the embedded NotImplementedFileSystem.
type adapter struct {
	fuseutil.NotImplementedFileSystem
	fs  *fs.FS
	log *slog.Logger
}

// fail logs err once with its context and returns the errno for the kernel. Lookups of
// missing names are the normal case and are not logged.
func (a *adapter) fail(err error) error {
	errno := Errno(err)
	if errno != syscall.ENOENT {
		a.log.Warn("operation failed", "error", err.Error(), "errno", errno.Error())
	}
	return errno
}

func attrs(at fs.Attr) fuseops.InodeAttributes {
	return fuseops.InodeAttributes{
		Size: at.Size, Nlink: at.Nlink, Mode: at.Mode, Uid: at.UID, Gid: at.GID,
		Atime: at.Atime, Mtime: at.Mtime, Ctime: at.Ctime,
	}
}

func (a *adapter) StatFS(ctx context.Context, op *fuseops.StatFSOp) error {
	s := a.fs.StatFS(ctx)
	op.BlockSize, op.Blocks, op.BlocksFree, op.BlocksAvailable = s.BlockSize, s.Blocks, s.BlocksFree, s.BlocksFree
	op.Inodes, op.InodesFree, op.IoSize = s.Inodes, s.InodesFree, s.IOBlockSize
	return nil
}

func (a *adapter) LookUpInode(ctx context.Context, op *fuseops.LookUpInodeOp) error {
	e, err := a.fs.Lookup(ctx, fs.InodeID(op.Parent), op.Name)
	if err != nil {
		return a.fail(err)
	}
	op.Entry = fuseops.ChildInodeEntry{
		Child: fuseops.InodeID(e.Attr.Inode), Attributes: attrs(e.Attr),
		AttributesExpiration: e.Expires, EntryExpiration: e.Expires,
	}
	return nil
}

func (a *adapter) GetInodeAttributes(ctx context.Context, op *fuseops.GetInodeAttributesOp) error {
	at, exp, err := a.fs.GetAttr(ctx, fs.InodeID(op.Inode))
	if err != nil {
		return a.fail(err)
	}
	op.Attributes, op.AttributesExpiration = attrs(at), exp
	return nil
}

func (a *adapter) ForgetInode(ctx context.Context, op *fuseops.ForgetInodeOp) error {
	a.fs.Forget(fs.InodeID(op.Inode), op.N)
	return nil
}

func (a *adapter) BatchForget(ctx context.Context, op *fuseops.BatchForgetOp) error {
	for _, e := range op.Entries {
		a.fs.Forget(fs.InodeID(e.Inode), e.N)
	}
	return nil
}

func (a *adapter) OpenDir(ctx context.Context, op *fuseops.OpenDirOp) error {
	h, err := a.fs.OpenDir(ctx, fs.InodeID(op.Inode))
	if err != nil {
		return a.fail(err)
	}
	op.Handle = fuseops.HandleID(h)
	return nil
}

func (a *adapter) ReadDir(ctx context.Context, op *fuseops.ReadDirOp) error {
	entries, err := a.fs.ReadDir(ctx, fs.HandleID(op.Handle), uint64(op.Offset))
	if err != nil {
		return a.fail(err)
	}
	for _, e := range entries {
		n := fuseutil.WriteDirent(op.Dst[op.BytesRead:], fuseutil.Dirent{
			Offset: fuseops.DirOffset(e.Offset), Inode: fuseops.InodeID(e.Inode), Name: e.Name, Type: direntType(e.Kind),
		})
		if n == 0 {
			break
		}
		op.BytesRead += n
	}
	return nil
}

func direntType(k keymap.Kind) fuseutil.DirentType {
	if k == keymap.Dir {
		return fuseutil.DT_Directory
	}
	return fuseutil.DT_File
}

func (a *adapter) ReleaseDirHandle(ctx context.Context, op *fuseops.ReleaseDirHandleOp) error {
	a.fs.ReleaseDir(fs.HandleID(op.Handle))
	return nil
}

func (a *adapter) OpenFile(ctx context.Context, op *fuseops.OpenFileOp) error {
	flags := fs.OpenFlags{
		Write:  op.OpenFlags.IsWriteOnly() || op.OpenFlags.IsReadWrite(),
		Trunc:  op.OpenFlags&syscall.O_TRUNC != 0,
		Direct: op.OpenFlags&syscall.O_DIRECT != 0,
	}
	h, err := a.fs.Open(ctx, fs.InodeID(op.Inode), flags)
	if err != nil {
		return a.fail(err)
	}
	op.Handle = fuseops.HandleID(h)
	return nil
}

func (a *adapter) ReadFile(ctx context.Context, op *fuseops.ReadFileOp) error {
	dst := op.Dst
	if dst == nil {
		dst = make([]byte, op.Size)
		op.Data = [][]byte{dst}
	}
	n, err := a.fs.Read(ctx, fs.HandleID(op.Handle), op.Offset, dst)
	op.BytesRead = n
	if op.Data != nil {
		op.Data[0] = dst[:n]
	}
	if err != nil {
		return a.fail(err)
	}
	return nil
}

func (a *adapter) ReleaseFileHandle(ctx context.Context, op *fuseops.ReleaseFileHandleOp) error {
	a.fs.Release(fs.HandleID(op.Handle))
	return nil
}

// FlushFile succeeds: reads have nothing to flush, and until the write path lands nothing
// else can be open.
func (a *adapter) FlushFile(ctx context.Context, op *fuseops.FlushFileOp) error { return nil }

// GetXattr answers ENODATA instead of ENOSYS so that `ls -l` and `cp -a` do not complain
// about extended attributes that S3 does not have (S8).
func (a *adapter) GetXattr(ctx context.Context, op *fuseops.GetXattrOp) error {
	return syscall.ENODATA
}

func (a *adapter) ListXattr(ctx context.Context, op *fuseops.ListXattrOp) error {
	op.BytesRead = 0
	return nil
}
