// Package mount is the thin adapter between the Linux kernel's FUSE protocol (through
// github.com/jacobsa/fuse) and the file-system core in impl/streamfs: it translates each kernel
// operation into one call of the core, errors into errnos through one table, and owns the mount's
// lifecycle. It makes no decision of its own; nothing else in the product imports jacobsa/fuse.
package mount

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"

	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// FileSystem is the core the adapter drives: impl/streamfs in streaming mode, impl/syncfs in sync
// mode. Each method is one kernel operation; the core decides everything, including which
// operations its mode supports.
type FileSystem interface {
	StatFS(ctx context.Context) vfs.StatFS
	Lookup(ctx context.Context, parent vfs.InodeID, name string) (vfs.Entry, error)
	// LookupListed is Lookup for an entry ReadDir has just returned, for READDIRPLUS: it
	// must not cost a request per entry, and fails for an entry it cannot answer so, which
	// the kernel then looks up on its own.
	LookupListed(ctx context.Context, parent vfs.InodeID, name string) (vfs.Entry, error)
	GetAttr(ctx context.Context, id vfs.InodeID) (vfs.Attr, time.Time, error)
	SetAttr(ctx context.Context, id vfs.InodeID, req vfs.SetAttrRequest) (vfs.Attr, time.Time, error)
	Forget(id vfs.InodeID, n uint64)

	OpenDir(ctx context.Context, id vfs.InodeID) (vfs.HandleID, error)
	ReadDir(ctx context.Context, h vfs.HandleID, offset uint64) ([]vfs.DirEntry, error)
	ReleaseDir(h vfs.HandleID)

	Open(ctx context.Context, id vfs.InodeID, flags vfs.OpenFlags, p vfs.Process) (vfs.HandleID, error)
	Create(ctx context.Context, parent vfs.InodeID, name string, mode os.FileMode, c vfs.Caller) (vfs.Entry, vfs.HandleID, error)
	Read(ctx context.Context, h vfs.HandleID, off int64, dst []byte) (int, error)
	Write(ctx context.Context, h vfs.HandleID, off int64, data []byte) error
	Flush(ctx context.Context, h vfs.HandleID, p vfs.Process) error
	Fsync(ctx context.Context, h vfs.HandleID) error
	Release(h vfs.HandleID)

	MkDir(ctx context.Context, parent vfs.InodeID, name string, mode os.FileMode, c vfs.Caller) (vfs.Entry, error)
	RmDir(ctx context.Context, parent vfs.InodeID, name string) error
	Unlink(ctx context.Context, parent vfs.InodeID, name string) error
	Rename(ctx context.Context, oldParent vfs.InodeID, oldName string, newParent vfs.InodeID, newName string) error
	Symlink(ctx context.Context, parent vfs.InodeID, name, target string, c vfs.Caller) (vfs.Entry, error)
	ReadLink(ctx context.Context, id vfs.InodeID) (string, error)
	GetXattr(ctx context.Context, id vfs.InodeID, name string) ([]byte, error)
	ListXattr(ctx context.Context, id vfs.InodeID) ([]string, error)
	// SetXattr: flags are setxattr(2)'s XATTR_CREATE and XATTR_REPLACE.
	SetXattr(ctx context.Context, id vfs.InodeID, name string, value []byte, flags uint32) error

	// Unsupported is the error for an operation the mode does not have (links, mknod, ...).
	Unsupported(op string) error
}

// NodeMaker is implemented by a core that makes FIFOs, devices and sockets (mknod(2), and
// bind(2) of a UNIX socket); without it mknod is the core's Unsupported.
type NodeMaker interface {
	MkNode(ctx context.Context, parent vfs.InodeID, name string, mode os.FileMode, rdev uint32, c vfs.Caller) (vfs.Entry, error)
}

// Linker is implemented by a core that has hard links: Link makes name in parent another
// name of inode target, and answers with that inode's entry.
type Linker interface {
	Link(ctx context.Context, target vfs.InodeID, parent vfs.InodeID, name string) (vfs.Entry, error)
}

// XattrRemover is implemented by a core that keeps extended attributes set on its files.
type XattrRemover interface {
	RemoveXattr(ctx context.Context, id vfs.InodeID, name string) error
}

// DirectHandles is implemented by a core that may ask for a handle it opened to be read
// without the kernel's page cache, for instance because the kernel may hold a stale size for
// the file and would cut reads at it.
type DirectHandles interface {
	DirectIO(h vfs.HandleID) bool
}

// Ender is implemented by a core with work to finish when the connection ends, before the
// process may exit: at an unmount the kernel drops the requests it had queued and not sent,
// RELEASEs among them.
type Ender interface {
	End()
}

// adapter implements fuseutil.FileSystem over a FileSystem. Operations it does not implement
// answer ENOSYS through the embedded NotImplementedFileSystem.
type adapter struct {
	fuseutil.NotImplementedFileSystem
	fs  FileSystem
	log *slog.Logger
	// directReads opens read-only files with direct I/O (see Options.DirectReads).
	directReads bool
	noXattrs    sync.Once // logs that the core keeps no extended attributes, once
}

// uninterruptible detaches an operation from the kernel's interrupts. The kernel interrupts a
// request when the calling thread receives any signal, including ones a program handles and
// expects its system calls to survive (Go's runtime preempts threads with SIGURG all the time,
// shells get SIGCHLD and SIGWINCH). Answering EINTR then makes ls, cp or a build fail at
// random, which a local file system never does, and an upload or import cut short helps no
// one: every store call has its own timeouts and retries. A fatal signal still ends the
// program at once: the kernel stops waiting for the answer itself.
func uninterruptible(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// fail logs err once with its context and returns the errno for the kernel. Lookups of
// missing names are the normal case and are not logged.
func (a *adapter) fail(err error) error {
	if err == nil {
		return nil
	}
	errno := Errno(err)
	if errno != syscall.ENOENT {
		a.log.Warn("operation failed", "error", err.Error(), "errno", errno.Error())
	}
	return errno
}

func attrs(at vfs.Attr) fuseops.InodeAttributes {
	return fuseops.InodeAttributes{
		Size: at.Size, Nlink: at.Nlink, Mode: at.Mode, Uid: at.UID, Gid: at.GID,
		Atime: kernelTime(at.Atime), Mtime: kernelTime(at.Mtime), Ctime: kernelTime(at.Ctime), Rdev: at.Rdev,
	}
}

// kernelTime is t as jacobsa/fuse can give it to the kernel. It splits a time into seconds
// and nanoseconds by truncating toward zero, which before 1970 gives the kernel a negative
// fraction it reads as almost two seconds off; a whole second converts exactly, so such a
// time is given as the second it falls in (floor), less than a second early.
func kernelTime(t time.Time) time.Time {
	if t.Unix() < 0 && t.Nanosecond() != 0 {
		return time.Unix(t.Unix(), 0)
	}
	return t
}

func (a *adapter) StatFS(ctx context.Context, op *fuseops.StatFSOp) error {
	ctx = uninterruptible(ctx)
	s := a.fs.StatFS(ctx)
	op.BlockSize, op.Blocks, op.BlocksFree, op.BlocksAvailable = s.BlockSize, s.Blocks, s.BlocksFree, s.BlocksFree
	op.Inodes, op.InodesFree, op.IoSize = s.Inodes, s.InodesFree, s.IOBlockSize
	return nil
}

func (a *adapter) LookUpInode(ctx context.Context, op *fuseops.LookUpInodeOp) error {
	ctx = uninterruptible(ctx)
	e, err := a.fs.Lookup(ctx, vfs.InodeID(op.Parent), op.Name)
	if err != nil {
		return a.fail(err)
	}
	op.Entry = childEntry(e)
	return nil
}

func (a *adapter) GetInodeAttributes(ctx context.Context, op *fuseops.GetInodeAttributesOp) error {
	ctx = uninterruptible(ctx)
	at, exp, err := a.fs.GetAttr(ctx, vfs.InodeID(op.Inode))
	if err != nil {
		return a.fail(err)
	}
	op.Attributes, op.AttributesExpiration = attrs(at), exp
	return nil
}

func (a *adapter) ForgetInode(ctx context.Context, op *fuseops.ForgetInodeOp) error {
	ctx = uninterruptible(ctx)
	a.fs.Forget(vfs.InodeID(op.Inode), op.N)
	return nil
}

func (a *adapter) BatchForget(ctx context.Context, op *fuseops.BatchForgetOp) error {
	ctx = uninterruptible(ctx)
	for _, e := range op.Entries {
		a.fs.Forget(vfs.InodeID(e.Inode), e.N)
	}
	return nil
}

func (a *adapter) OpenDir(ctx context.Context, op *fuseops.OpenDirOp) error {
	ctx = uninterruptible(ctx)
	h, err := a.fs.OpenDir(ctx, vfs.InodeID(op.Inode))
	if err != nil {
		return a.fail(err)
	}
	op.Handle = fuseops.HandleID(h)
	return nil
}

func (a *adapter) ReadDir(ctx context.Context, op *fuseops.ReadDirOp) error {
	ctx = uninterruptible(ctx)
	entries, err := a.fs.ReadDir(ctx, vfs.HandleID(op.Handle), uint64(op.Offset))
	if err != nil {
		return a.fail(err)
	}
	for _, e := range entries {
		n := fuseutil.WriteDirent(op.Dst[op.BytesRead:], fuseutil.Dirent{
			Offset: fuseops.DirOffset(e.Offset), Inode: fuseops.InodeID(e.Inode), Name: e.Name, Type: direntType(e),
		})
		if n == 0 {
			break
		}
		op.BytesRead += n
	}
	return nil
}

// ReadDirPlus answers READDIRPLUS as READDIR plus the core's LookupListed of each entry, so an
// `ls -l` of a large directory costs one kernel round trip per buffer of entries instead of
// one LOOKUP per entry. The kernel counts every entry sent with a non-zero inode as one
// lookup and forgets it later, exactly as after a LOOKUP. An entry LookupListed cannot
// answer goes without attributes (node 0), which the kernel takes as
// "look it up yourself when needed"; its dirent keeps its inode number, since readdir(3)
// callers such as Go's skip a d_ino of 0.
func (a *adapter) ReadDirPlus(ctx context.Context, op *fuseops.ReadDirPlusOp) error {
	ctx = uninterruptible(ctx)
	entries, err := a.fs.ReadDir(ctx, vfs.HandleID(op.Handle), uint64(op.Offset))
	if err != nil {
		return a.fail(err)
	}
	for _, e := range entries {
		d := fuseutil.DirentPlus{Dirent: fuseutil.Dirent{
			Offset: fuseops.DirOffset(e.Offset), Inode: fuseops.InodeID(e.Inode), Name: e.Name, Type: direntType(e),
		}}
		// Written once without attributes to see whether it fits (the attributes have a
		// fixed size): a lookup of an entry that does not would be forgotten at once, and
		// with it what the listing said about the entry, so its next lookup would go to
		// the bucket.
		dst := op.Dst[op.BytesRead:]
		n := fuseutil.WriteDirentPlus(dst, d)
		if n == 0 {
			break
		}
		if e.Name != "." && e.Name != ".." {
			if ent, err := a.fs.LookupListed(ctx, vfs.InodeID(op.Inode), e.Name); err == nil {
				d.Entry = childEntry(ent)
				d.Dirent.Inode, d.Dirent.Type = d.Entry.Child, modeType(d.Entry.Attributes.Mode)
				n = fuseutil.WriteDirentPlus(dst, d)
			}
		}
		op.BytesRead += n
	}
	return nil
}

func modeType(m os.FileMode) fuseutil.DirentType {
	switch {
	case m&os.ModeSymlink != 0:
		return fuseutil.DT_Link
	case m.IsDir():
		return fuseutil.DT_Directory
	case m&os.ModeNamedPipe != 0:
		return fuseutil.DT_FIFO
	case m&os.ModeSocket != 0:
		return fuseutil.DT_Socket
	case m&os.ModeCharDevice != 0:
		return fuseutil.DT_Char
	case m&os.ModeDevice != 0:
		return fuseutil.DT_Block
	}
	return fuseutil.DT_File
}

func direntType(e vfs.DirEntry) fuseutil.DirentType {
	if e.Kind == keymap.Dir {
		return fuseutil.DT_Directory
	}
	return modeType(e.Type)
}

func (a *adapter) ReleaseDirHandle(ctx context.Context, op *fuseops.ReleaseDirHandleOp) error {
	ctx = uninterruptible(ctx)
	a.fs.ReleaseDir(vfs.HandleID(op.Handle))
	return nil
}

func (a *adapter) OpenFile(ctx context.Context, op *fuseops.OpenFileOp) error {
	ctx = uninterruptible(ctx)
	flags := vfs.OpenFlags{
		Write:  op.OpenFlags.IsWriteOnly() || op.OpenFlags.IsReadWrite(),
		Read:   op.OpenFlags.IsReadOnly() || op.OpenFlags.IsReadWrite(),
		Trunc:  op.OpenFlags&syscall.O_TRUNC != 0,
		Direct: op.OpenFlags&syscall.O_DIRECT != 0,
	}
	h, err := a.fs.Open(ctx, vfs.InodeID(op.Inode), flags, thread(op.OpContext.Pid))
	if err != nil {
		return a.fail(err)
	}
	op.Handle = fuseops.HandleID(h)
	op.UseDirectIO = flags.Direct || a.directReads && !flags.Write
	if d, ok := a.fs.(DirectHandles); ok && d.DirectIO(h) {
		op.UseDirectIO = true
	}
	return nil
}

func (a *adapter) ReadFile(ctx context.Context, op *fuseops.ReadFileOp) error {
	ctx = uninterruptible(ctx)
	dst := op.Dst
	if dst == nil {
		dst = make([]byte, op.Size)
		op.Data = [][]byte{dst}
	}
	n, err := a.fs.Read(ctx, vfs.HandleID(op.Handle), op.Offset, dst)
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
	ctx = uninterruptible(ctx)
	a.fs.Release(vfs.HandleID(op.Handle))
	return nil
}

func (a *adapter) FlushFile(ctx context.Context, op *fuseops.FlushFileOp) error {
	ctx = uninterruptible(ctx)
	if err := a.fs.Flush(ctx, vfs.HandleID(op.Handle), thread(op.OpContext.Pid)); err != nil {
		return a.fail(err)
	}
	return nil
}

func (a *adapter) SyncFile(ctx context.Context, op *fuseops.SyncFileOp) error {
	ctx = uninterruptible(ctx)
	if err := a.fs.Fsync(ctx, vfs.HandleID(op.Handle)); err != nil {
		return a.fail(err)
	}
	return nil
}

func (a *adapter) CreateFile(ctx context.Context, op *fuseops.CreateFileOp) error {
	ctx = uninterruptible(ctx)
	e, h, err := a.fs.Create(ctx, vfs.InodeID(op.Parent), op.Name, op.Mode, caller(op.OpContext))
	if err != nil {
		return a.fail(err)
	}
	op.Entry, op.Handle = childEntry(e), fuseops.HandleID(h)
	return nil
}

func (a *adapter) WriteFile(ctx context.Context, op *fuseops.WriteFileOp) error {
	ctx = uninterruptible(ctx)
	if err := a.fs.Write(ctx, vfs.HandleID(op.Handle), op.Offset, op.Data); err != nil {
		return a.fail(err)
	}
	return nil
}

func (a *adapter) MkDir(ctx context.Context, op *fuseops.MkDirOp) error {
	ctx = uninterruptible(ctx)
	e, err := a.fs.MkDir(ctx, vfs.InodeID(op.Parent), op.Name, op.Mode, caller(op.OpContext))
	if err != nil {
		return a.fail(err)
	}
	op.Entry = childEntry(e)
	return nil
}

func (a *adapter) RmDir(ctx context.Context, op *fuseops.RmDirOp) error {
	ctx = uninterruptible(ctx)
	if err := a.fs.RmDir(ctx, vfs.InodeID(op.Parent), op.Name); err != nil {
		return a.fail(err)
	}
	return nil
}

func (a *adapter) Unlink(ctx context.Context, op *fuseops.UnlinkOp) error {
	ctx = uninterruptible(ctx)
	if err := a.fs.Unlink(ctx, vfs.InodeID(op.Parent), op.Name); err != nil {
		return a.fail(err)
	}
	return nil
}

func (a *adapter) Rename(ctx context.Context, op *fuseops.RenameOp) error {
	ctx = uninterruptible(ctx)
	return a.fail(a.fs.Rename(ctx, vfs.InodeID(op.OldParent), op.OldName, vfs.InodeID(op.NewParent), op.NewName))
}

func (a *adapter) SetInodeAttributes(ctx context.Context, op *fuseops.SetInodeAttributesOp) error {
	ctx = uninterruptible(ctx)
	req := vfs.SetAttrRequest{Size: op.Size, UID: op.Uid, GID: op.Gid, Atime: op.Atime, Mtime: op.Mtime}
	if op.Mode != nil {
		m := *op.Mode
		req.Mode = &m
	}
	at, exp, err := a.fs.SetAttr(ctx, vfs.InodeID(op.Inode), req)
	if err != nil {
		return a.fail(err)
	}
	op.Attributes, op.AttributesExpiration = attrs(at), exp
	return nil
}

func (a *adapter) CreateSymlink(ctx context.Context, op *fuseops.CreateSymlinkOp) error {
	ctx = uninterruptible(ctx)
	e, err := a.fs.Symlink(ctx, vfs.InodeID(op.Parent), op.Name, op.Target, caller(op.OpContext))
	if err != nil {
		return a.fail(err)
	}
	op.Entry = childEntry(e)
	return nil
}

func (a *adapter) ReadSymlink(ctx context.Context, op *fuseops.ReadSymlinkOp) error {
	ctx = uninterruptible(ctx)
	t, err := a.fs.ReadLink(ctx, vfs.InodeID(op.Inode))
	if err != nil {
		return a.fail(err)
	}
	op.Target = t
	return nil
}

func (a *adapter) CreateLink(ctx context.Context, op *fuseops.CreateLinkOp) error {
	ctx = uninterruptible(ctx)
	l, ok := a.fs.(Linker)
	if !ok {
		return a.fail(a.fs.Unsupported("link"))
	}
	e, err := l.Link(ctx, vfs.InodeID(op.Target), vfs.InodeID(op.Parent), op.Name)
	if err != nil {
		return a.fail(err)
	}
	op.Entry = childEntry(e)
	return nil
}

func (a *adapter) MkNode(ctx context.Context, op *fuseops.MkNodeOp) error {
	ctx = uninterruptible(ctx)
	m, ok := a.fs.(NodeMaker)
	if !ok {
		return a.fail(a.fs.Unsupported("mknod"))
	}
	e, err := m.MkNode(ctx, vfs.InodeID(op.Parent), op.Name, op.Mode, op.Rdev, caller(op.OpContext))
	if err != nil {
		return a.fail(err)
	}
	op.Entry = childEntry(e)
	return nil
}

func (a *adapter) SetXattr(ctx context.Context, op *fuseops.SetXattrOp) error {
	ctx = uninterruptible(ctx)
	return a.fail(a.fs.SetXattr(ctx, vfs.InodeID(op.Inode), op.Name, op.Value, op.Flags))
}

func (a *adapter) RemoveXattr(ctx context.Context, op *fuseops.RemoveXattrOp) error {
	ctx = uninterruptible(ctx)
	r, ok := a.fs.(XattrRemover)
	if !ok {
		return a.fail(a.fs.Unsupported("removexattr"))
	}
	err := r.RemoveXattr(ctx, vfs.InodeID(op.Inode), op.Name)
	if vfs.CodeOf(err) == vfs.CodeNoAttr {
		return syscall.ENODATA
	}
	return a.fail(err)
}

func (a *adapter) Fallocate(ctx context.Context, op *fuseops.FallocateOp) error {
	ctx = uninterruptible(ctx)
	return a.fail(a.fs.Unsupported("fallocate"))
}

// Destroy runs once the connection has ended and every operation has returned.
func (a *adapter) Destroy() {
	if e, ok := a.fs.(Ender); ok {
		e.End()
	}
}

func childEntry(e vfs.Entry) fuseops.ChildInodeEntry {
	return fuseops.ChildInodeEntry{
		Child: fuseops.InodeID(e.Attr.Inode), Generation: fuseops.GenerationNumber(e.Generation), Attributes: attrs(e.Attr),
		AttributesExpiration: e.Expires, EntryExpiration: e.Expires,
	}
}

// GetXattr and ListXattr follow getxattr(2): with an empty buffer they report the size only;
// a buffer too small is ERANGE.
func (a *adapter) GetXattr(ctx context.Context, op *fuseops.GetXattrOp) error {
	ctx = uninterruptible(ctx)
	v, err := a.fs.GetXattr(ctx, vfs.InodeID(op.Inode), op.Name)
	if err != nil {
		switch vfs.CodeOf(err) {
		case vfs.CodeNoAttr:
			return syscall.ENODATA // the normal answer; not worth a log line
		case vfs.CodeNoXattrs:
			a.noXattrs.Do(func() {
				a.log.Info("extended attributes are not kept in this mode; the kernel now answers getxattr with ENOTSUP itself", "reason", err.Error())
			})
			return Errno(err)
		}
		return a.fail(err)
	}
	return fillXattr(v, op.Dst, &op.BytesRead)
}

func (a *adapter) ListXattr(ctx context.Context, op *fuseops.ListXattrOp) error {
	ctx = uninterruptible(ctx)
	names, err := a.fs.ListXattr(ctx, vfs.InodeID(op.Inode))
	if err != nil {
		return a.fail(err)
	}
	var v []byte
	for _, n := range names {
		v = append(append(v, n...), 0)
	}
	return fillXattr(v, op.Dst, &op.BytesRead)
}

func fillXattr(v, dst []byte, n *int) error {
	*n = len(v)
	if len(dst) == 0 {
		return nil
	}
	if len(dst) < len(v) {
		return syscall.ERANGE
	}
	copy(dst, v)
	return nil
}
