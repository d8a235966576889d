package streamfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/mount-s3/mount-s3/impl/vfs"

	"github.com/mount-s3/mount-s3/impl/read"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/streamrule"
)

// readHandle is a file opened for reading (S10). It reads one version of the object, the one
// seen at open: the reader's GETs carry If-Match with that ETag, so a read never mixes two
// versions. The reader prefetches sequential reads with parallel ranged GETs (S1).
type readHandle struct {
	path   string       // constant
	reader *read.Reader // safe for concurrent use
	key    string       // constant
	etag   string       // constant: the version read
	size   int64        // constant: its size
	// small: the open started fetching the whole object (small.go); only then may reads be
	// served from it, and only then do they take mu. Constant.
	small bool

	mu sync.Mutex
	// pending: the whole object is being fetched (small.go); the first read takes it.
	pending bool // GUARDED_BY(mu)
	// whole is the whole object when it was fetched whole; nil: the reader serves reads.
	whole   []byte // GUARDED_BY(mu)
	release func() // GUARDED_BY(mu): returns whole's memory
}

// Open opens a file for reading, or for writing (which replaces the object, S6). A file being
// written cannot be opened for reading until it is closed (S2).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Open(ctx context.Context, id vfs.InodeID, flags vfs.OpenFlags, p vfs.Process) (vfs.HandleID, error) {
	f.mu.Lock()
	in := f.inodes.get(id)
	if in == nil {
		f.mu.Unlock()
		return 0, vfs.NewError("open", "", vfs.CodeBadHandle, "unknown inode")
	}
	path, kind, stale, writing := in.path, in.kind, !in.validUntil.after(f.clock.Now()), in.writer != nil
	f.mu.Unlock()
	if kind == keymap.Dir {
		return 0, vfs.NewError("open", path, vfs.CodeIsDir, "is a directory")
	}
	// S10: O_RDWR without O_TRUNC on an existing object is a read handle; writes to it
	// fail. Anything else that asks for writing replaces the object.
	if streamrule.WriteHandle(flags.Write, flags.Read, flags.Trunc) {
		return f.openForWrite(in, flags, p.ID())
	}
	if writing {
		return 0, vfs.NewError("open", path, vfs.CodePerm, "the file is being written; it can be read once it is closed")
	}
	if stale || flags.Direct {
		if err := f.refresh(ctx, id); err != nil {
			return 0, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := keymap.FileKey(f.prefix, path)
	h := &readHandle{path: path, key: key, etag: in.etag, size: in.size, reader: read.NewReader(f.cfg.Read, key, in.etag, in.size)}
	h.small = f.fetchSmallLocked(in, key)
	h.pending = h.small
	return f.addHandle(h), nil
}

// refresh re-reads a file's metadata from the store now.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) refresh(ctx context.Context, id vfs.InodeID) error {
	f.mu.Lock()
	if in := f.inodes.get(id); in != nil {
		in.validUntil, in.metaAt = stampOf(f.mounted), stampOf(f.clock.Now()) // force the store round trip
	}
	f.mu.Unlock()
	_, _, err := f.GetAttr(ctx, id)
	return err
}

// Read reads up to len(dst) bytes at offset off. It returns fewer only at the end of the file.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Read(ctx context.Context, h vfs.HandleID, off int64, dst []byte) (int, error) {
	rh, err := vfs.HandleOf[*readHandle](&f.handles, h, "read")
	if err != nil {
		return 0, err
	}
	if off+int64(len(dst)) > rh.size && f.grown(rh) {
		// The kernel may ask past the end of the version this handle reads because it holds
		// the size of the file that replaces it (one program overwrites while another reads:
		// they share the kernel's inode). A short read here would have the kernel fill the
		// rest with zeros, and the reader get the old version's bytes and then zeros.
		err := errors.New("the file was overwritten since it was opened; reopen to read the new version")
		f.log.Warn("read failed", "path", "/"+rh.path, "error", err)
		return 0, &vfs.Error{Op: "read", Path: rh.path, Code: vfs.CodeIO, Err: err}
	}
	if rh.small {
		if whole, ok := f.wholeOf(ctx, rh); ok {
			if off >= int64(len(whole)) {
				return 0, nil
			}
			return copy(dst, whole[off:]), nil
		}
	}
	n, err := rh.reader.ReadAt(ctx, dst, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if err != nil {
		if errors.Is(err, s3.ErrPreconditionFailed) {
			// The next open must see the new version, whatever the metadata TTL.
			f.mu.Lock()
			f.staleLocked(rh.path, keymap.File)
			f.mu.Unlock()
			err = fmt.Errorf("object changed in the bucket since it was opened; reopen to read the new version: %w", err)
			f.log.Warn("read failed", "path", "/"+rh.path, "error", err)
			return n, &vfs.Error{Op: "read", Path: rh.path, Code: vfs.CodeIO, Err: err}
		}
		return n, storeError("read", rh.path, err)
	}
	return n, nil
}

// grown reports whether the kernel may hold a size for rh's file beyond the version rh reads,
// and so ask past its end: the file is being written past it, or the mount knows a newer and
// larger version. A refresh that finds the same object (or a newer one no larger) does not
// count: the kernel then asks nothing past the end.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) grown(rh *readHandle) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.inodes.lookup(rh.path, keymap.File)
	switch {
	case in == nil:
		return false
	case in.writer != nil:
		return in.writer.size() > rh.size
	}
	return in.size > rh.size && in.etag != "" && s3.NormalizeETag(in.etag) != s3.NormalizeETag(rh.etag)
}

// Release closes a file handle.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Release(h vfs.HandleID) {
	f.mu.Lock()
	v := f.handles.Remove(h)
	f.mu.Unlock()
	switch h := v.(type) {
	case *readHandle:
		h.reader.Close()
		if !h.small {
			return
		}
		h.mu.Lock()
		if h.release != nil {
			h.release()
		}
		if h.pending {
			f.cfg.FetchAhead.Drop(h.key, h.etag) // fetched whole for an open that read nothing
		}
		h.whole, h.release, h.pending = nil, nil, false
		h.mu.Unlock()
	case *writeHandle:
		f.releaseWrite(h)
	}
}
