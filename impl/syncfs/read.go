package syncfs

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/mount-s3/mount-s3/impl/read"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// fileHandle is an open file. Exactly one of local and remote is set: local when the bytes are
// in the local layer (every handle that may write has them there, Y2), remote when a read-only
// open streams a file whose bytes are not local.
type fileHandle struct {
	mu     sync.Mutex
	ino    vfs.InodeID
	path   string // for errors; the file may be renamed while open
	write  bool
	local  *local.Handle
	remote *read.Reader // GUARDED_BY(mu) for the swap in readRemote
	key    string       // where remote reads from
	// retired are readers replaced by readRemote, closed at release. GUARDED_BY(mu)
	retired []*read.Reader
	// direct: the kernel may hold another size for the file than the one this handle reads
	// (see staleSize), so its reads bypass the kernel's cache, which cuts them at that size.
	direct bool
}

// Open opens a file. A file opened for writing has its bytes brought into the local layer
// first (Y2); one opened for reading only streams them from the bucket if they are not local.
func (f *FS) Open(ctx context.Context, id vfs.InodeID, flags vfs.OpenFlags, _ vfs.Process) (vfs.HandleID, error) {
	path, err := f.pathOf(id, "open")
	if err != nil {
		return 0, err
	}
	readOnly := !flags.Write && !flags.Trunc
	var info local.Info
	var localData *local.Handle // only for reading, and only when the bytes are local
	if readOnly {
		info, localData, err = f.layer.StatOpenRead(path)
	} else {
		info, err = f.layer.Stat(path)
	}
	if err != nil {
		return 0, localError("open", path, err)
	}
	switch info.Kind {
	case local.KindDir:
		return 0, vfs.NewError("open", path, vfs.CodeIsDir, "is a directory")
	case local.KindSymlink:
		return 0, vfs.NewError("open", path, vfs.CodeInvalid, "is a symbolic link")
	case local.KindFIFO, local.KindSocket, local.KindCharDevice, local.KindBlockDevice:
		// The kernel opens these itself and never asks; a stale inode could.
		return 0, vfs.NewError("open", path, vfs.CodeInvalid, "is a special file")
	}
	h := &fileHandle{ino: id, path: path, write: flags.Write}
	if flags.Trunc {
		f.toldSize(id, 0) // the kernel sets the size to 0 itself when the open returns
	}
	if readOnly {
		h.local = localData
		if h.local == nil && info.State.Data != syncrule.LocalData && f.cfg.Importer != nil {
			// The bytes are in the bucket, at the file's key or, right after a rename, still at
			// the key the rename's copy reads from (Y9).
			// Key, version and size come from one read: the Stat above may be older than a
			// remote change, and the new version's bytes read up to the old size are torn.
			src, err := f.layer.RemoteSource(path)
			if err != nil {
				return 0, localError("open", path, err)
			}
			h.remote, h.key = read.NewReader(f.cfg.Read, src.Key, src.Version.ETag, src.Size), src.Key
			h.direct = f.staleSize(id, src.Size)
			return f.handles.Add(h), nil
		}
		if h.local == nil {
			if h.local, err = f.layer.OpenRead(path); err != nil {
				return 0, localError("open", path, err)
			}
		}
		// Reads keep the data from expiring (Y10); the layer records them in the background.
		if err := f.layer.TouchLater(path, f.cfg.Clock.Now()); err != nil {
			f.log.Warn("recording a read for expiry failed", "path", "/"+path, "error", err.Error())
		}
		h.direct = f.staleSize(id, info.Size)
		return f.handles.Add(h), nil
	}
	if h.local, err = f.beginWrite(ctx, "open", path, info); err != nil {
		return 0, err
	}
	if flags.Trunc {
		if err := h.local.Truncate(0); err != nil {
			h.local.Close()
			return 0, localError("open", path, err)
		}
	}
	f.notify()
	return f.handles.Add(h), nil
}

// fetch brings a file's bytes into the local layer if they are not there (Y2).
func (f *FS) fetch(ctx context.Context, op, path string, info local.Info) error {
	if info.State.Data == syncrule.LocalData {
		return nil
	}
	if f.cfg.Importer == nil {
		return vfs.NewError(op, path, vfs.CodeIO, "file data is not local and there is no bucket to fetch it from")
	}
	return localError(op, path, f.cfg.Importer.Fetch(ctx, path))
}

// Read reads from an open file.
func (f *FS) Read(ctx context.Context, h vfs.HandleID, off int64, dst []byte) (int, error) {
	fh, err := vfs.HandleOf[*fileHandle](&f.handles, h, "read")
	if err != nil {
		return 0, err
	}
	var n int
	if fh.local == nil {
		n, err = f.readRemote(ctx, fh, dst, off)
	} else {
		n, err = fh.local.ReadAt(dst, off)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, localError("read", fh.path, err)
}

// DirectIO reports whether the kernel should read handle h without its cache (mount's
// DirectHandles).
func (f *FS) DirectIO(h vfs.HandleID) bool {
	fh, ok := f.handles.Get(h).(*fileHandle)
	return ok && fh.direct
}

// staleSize reports whether the size the kernel was last told for id differs from size, the
// size of the version an open is about to read. The kernel reads a cached file only up to
// the size it holds, until its attributes expire or are invalidated: right after a remote
// change (C2) replaced the file, an open that meets the new version before the kernel has
// dropped the old size would read the new bytes cut at the old size.
func (f *FS) staleSize(id vfs.InodeID, size int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.byID[id]
	return in != nil && in.last.Size != uint64(size)
}

// toldSize records that the kernel now holds size for id.
func (f *FS) toldSize(id vfs.InodeID, size uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in := f.byID[id]; in != nil {
		in.last.Size = size
	}
}

// Release closes a handle; a write handle is synced first, so nothing closed is lost (Y4).
func (f *FS) Release(h vfs.HandleID) {
	fh, _ := f.handles.Remove(h).(*fileHandle)
	if fh == nil {
		return
	}
	if fh.remote != nil {
		for _, r := range fh.retired {
			r.Close()
		}
		fh.remote.Close()
		return
	}
	if err := fh.local.Close(); err != nil {
		f.log.Error("close failed", "path", "/"+fh.path, "error", err.Error())
	}
	if fh.write {
		f.notify()
	}
}

// readRemote reads a file whose bytes are in the bucket. A rename's copy can move the object
// while the file is open (the handle was opened at the source key, and the engine then copies
// it to the new key and deletes the source): the read then finds the source gone, and is
// retried once from wherever the layer now says the bytes are. The copy is of the very
// version the handle was reading, so the bytes do not change.
func (f *FS) readRemote(ctx context.Context, fh *fileHandle, dst []byte, off int64) (int, error) {
	fh.mu.Lock()
	r, key := fh.remote, fh.key
	fh.mu.Unlock()
	n, err := r.ReadAt(ctx, dst, off)
	if err == nil || errors.Is(err, io.EOF) || !(errors.Is(err, s3.ErrNotFound) || errors.Is(err, s3.ErrPreconditionFailed)) {
		return n, err
	}
	path, perr := f.pathOf(fh.ino, "read")
	if perr != nil {
		return n, err
	}
	src, rerr := f.layer.RemoteSource(path)
	if rerr != nil || src.Key == key {
		return n, err
	}
	fh.mu.Lock()
	if fh.remote == r {
		// The old reader may be in use by a concurrent read: it is closed at release.
		fh.retired = append(fh.retired, r)
		fh.remote, fh.key = read.NewReader(f.cfg.Read, src.Key, src.Version.ETag, src.Size), src.Key
	}
	r = fh.remote
	fh.mu.Unlock()
	return r.ReadAt(ctx, dst, off)
}
