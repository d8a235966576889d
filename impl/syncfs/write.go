package syncfs

import (
	"context"
	"errors"
	"os"

	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/vfs"
)

// beginWrite fetches the file's bytes if they are not local (Y2) and opens it for writing. A
// remote change can replace the file's data between the two (C2: the bucket's new version is
// imported without data); the fetch is then done again, for the new version.
func (f *FS) beginWrite(ctx context.Context, op, path string, info local.Info) (*local.Handle, error) {
	for attempt := 0; ; attempt++ {
		if err := f.fetch(ctx, op, path, info); err != nil {
			return nil, err
		}
		h, err := f.layer.BeginWrite(path)
		if err == nil || !errors.Is(err, local.ErrNoData) || attempt == 3 {
			return h, localError(op, path, err)
		}
		if info, err = f.layer.Stat(path); err != nil {
			return nil, localError(op, path, err)
		}
	}
}

// Create makes a new file owned by the caller and opens it for writing (Y4).
func (f *FS) Create(ctx context.Context, parent vfs.InodeID, name string, mode os.FileMode, c vfs.Caller) (vfs.Entry, vfs.HandleID, error) {
	dir, path, err := f.childPath(parent, name, "create")
	if err != nil {
		return vfs.Entry{}, 0, err
	}
	if err := f.ensureDir(ctx, "create", dir, false); err != nil {
		return vfs.Entry{}, 0, err
	}
	info, lh, err := f.layer.CreateOpen(path, uint32(mode.Perm())|specialBits(mode), c.UID, c.GID)
	if err != nil {
		return vfs.Entry{}, 0, localError("create", path, err)
	}
	f.notify()
	e := f.entry(info)
	return e, f.handles.Add(&fileHandle{ino: e.Attr.Inode, path: path, write: true, local: lh}), nil
}

// specialBits converts setuid, setgid and sticky from os.FileMode to st_mode bits.
func specialBits(m os.FileMode) uint32 {
	var b uint32
	if m&os.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// Write writes at any offset (Y4); the local layer recorded the intent when the file was
// opened, so the bytes land in a file already durably dirty.
func (f *FS) Write(ctx context.Context, h vfs.HandleID, off int64, data []byte) error {
	fh, err := vfs.HandleOf[*fileHandle](&f.handles, h, "write")
	if err != nil {
		return err
	}
	if !fh.write || fh.local == nil {
		return vfs.NewError("write", fh.path, vfs.CodeBadHandle, "not open for writing")
	}
	n, err := fh.local.WriteAt(data, off)
	if n > 0 {
		f.grewTo(fh.ino, off+int64(n)) // the kernel extends its size by the write it sent
	}
	return localError("write", fh.path, err)
}

// grewTo records a write through the kernel that ended at end: the kernel extends the size it
// holds to at least end.
func (f *FS) grewTo(id vfs.InodeID, end int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in := f.byID[id]; in != nil && uint64(end) > in.last.Size {
		in.last.Size = uint64(end)
	}
}

// Flush is close(2): the file's data and record are durable when it returns (Y4), and the
// write-back engine is told (Y5 counts from the first change, not from close).
func (f *FS) Flush(ctx context.Context, h vfs.HandleID, _ vfs.Process) error {
	return f.sync(h, "close")
}

// Fsync makes the file durable locally (Y4). It does not wait for the bucket.
func (f *FS) Fsync(ctx context.Context, h vfs.HandleID) error {
	return f.sync(h, "fsync")
}

func (f *FS) sync(h vfs.HandleID, op string) error {
	var fh *fileHandle
	switch hd := f.handles.Get(h).(type) {
	case *vfs.DirHandle:
		// fsync of a directory: every namespace change was committed when it returned, but
		// for the creates answered before their commit.
		return localError(op, hd.Path, f.layer.SyncNamespace())
	case *fileHandle:
		fh = hd
	default:
		return vfs.NewError(op, "", vfs.CodeBadHandle, "unknown handle")
	}
	if !fh.write {
		return nil
	}
	err := fh.local.Sync()
	f.notify()
	return localError(op, fh.path, err)
}
