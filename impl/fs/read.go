package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// OpenFlags are the parts of open(2)'s flags the file system cares about.
type OpenFlags struct {
	Write  bool // O_WRONLY or O_RDWR
	Read   bool // O_RDONLY or O_RDWR
	Trunc  bool // O_TRUNC
	Direct bool // O_DIRECT: metadata is checked with the store (S3)
}

// readHandle is a file opened for reading (S10). It reads one version of the object, the one
// seen at open: every GET carries If-Match with that ETag, so a read never mixes two versions.
type readHandle struct {
	mu   sync.Mutex
	path string
	key  string
	etag string
	size int64

	// A streaming GET kept open while reads are sequential. GUARDED_BY(mu)
	body    io.ReadCloser
	bodyOff int64 // the offset of the next byte body yields
	nextOff int64 // where the previous read ended, to detect sequential reads
}

// Open opens a file for reading, or for writing (which replaces the object, S6). A file being
// written cannot be opened for reading until it is closed (S2).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Open(ctx context.Context, id InodeID, flags OpenFlags, pid uint32) (HandleID, error) {
	f.mu.Lock()
	in := f.inodes.get(id)
	if in == nil {
		f.mu.Unlock()
		return 0, newError("open", "", CodeBadHandle, "unknown inode")
	}
	path, kind, stale, writing := in.path, in.kind, !f.clock.Now().Before(in.validUntil), in.writer != nil
	f.mu.Unlock()
	if kind == keymap.Dir {
		return 0, newError("open", path, CodeIsDir, "is a directory")
	}
	// S10: O_RDWR without O_TRUNC on an existing object is a read handle; writes to it
	// fail. Anything else that asks for writing replaces the object.
	if flags.Write && !(flags.Read && !flags.Trunc) {
		return f.openForWrite(in, flags, pid)
	}
	if writing {
		return 0, newError("open", path, CodePerm, "the file is being written; it can be read once it is closed")
	}
	if stale || flags.Direct {
		if err := f.refresh(ctx, id); err != nil {
			return 0, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	h := &readHandle{path: path, key: keymap.FileKey(f.prefix, path), etag: in.etag, size: in.size}
	return f.addHandle(h), nil
}

// refresh re-reads a file's metadata from the store now.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) refresh(ctx context.Context, id InodeID) error {
	f.mu.Lock()
	if in := f.inodes.get(id); in != nil {
		in.validUntil = f.mounted // force the store round trip
	}
	f.mu.Unlock()
	_, _, err := f.GetAttr(ctx, id)
	return err
}

// Read reads up to len(dst) bytes at offset off. It returns fewer only at the end of the file.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Read(ctx context.Context, h HandleID, off int64, dst []byte) (int, error) {
	rh, err := handleOf[*readHandle](f, h, "read")
	if err != nil {
		return 0, err
	}
	rh.mu.Lock()
	defer rh.mu.Unlock()
	if off >= rh.size || len(dst) == 0 {
		return 0, nil
	}
	want := min(int64(len(dst)), rh.size-off)
	n, err := rh.read(ctx, f.store, off, dst[:want])
	if err != nil {
		if errors.Is(err, s3.ErrPreconditionFailed) {
			// The next open must see the new version, whatever the metadata TTL.
			f.mu.Lock()
			if id, ok := f.inodes.numbers[nodeKey{rh.path, keymap.File}]; ok {
				if in := f.inodes.get(id); in != nil {
					in.validUntil = f.mounted
				}
			}
			f.mu.Unlock()
			err = fmt.Errorf("object changed in the bucket since it was opened; reopen to read the new version: %w", err)
			f.log.Warn("read failed", "path", "/"+rh.path, "error", err)
			return n, &Error{Op: "read", Path: rh.path, Code: CodeIO, Err: err}
		}
		return n, storeError("read", rh.path, err)
	}
	return n, nil
}

// read fills dst from offset off. Sequential reads share one streaming GET to the end of the
// object; a read elsewhere fetches exactly its range. A stream that breaks is reopened once
// where it stopped.
// LOCKS_REQUIRED(rh.mu)
func (rh *readHandle) read(ctx context.Context, store s3.Store, off int64, dst []byte) (int, error) {
	sequential := off == rh.nextOff
	rh.nextOff = off + int64(len(dst))
	if rh.body != nil && off != rh.bodyOff {
		rh.closeBody()
	}
	if rh.body == nil && !sequential {
		body, _, err := store.Get(ctx, rh.key, off, int64(len(dst)), rh.etag)
		if err != nil {
			return 0, err
		}
		defer body.Close()
		return io.ReadFull(body, dst)
	}
	done := 0
	for retried := false; ; retried = true {
		if rh.body == nil {
			body, _, err := store.Get(ctx, rh.key, off+int64(done), -1, rh.etag)
			if err != nil {
				return done, err
			}
			rh.body, rh.bodyOff = body, off+int64(done)
		}
		n, err := io.ReadFull(rh.body, dst[done:])
		done += n
		rh.bodyOff += int64(n)
		if err == nil {
			return done, nil
		}
		rh.closeBody()
		if retried || ctx.Err() != nil {
			return done, err
		}
	}
}

// LOCKS_REQUIRED(rh.mu)
func (rh *readHandle) closeBody() {
	if rh.body != nil {
		rh.body.Close()
		rh.body = nil
	}
}

// Release closes a file handle.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Release(h HandleID) {
	f.mu.Lock()
	v := f.handles[h]
	delete(f.handles, h)
	f.mu.Unlock()
	switch h := v.(type) {
	case *readHandle:
		h.mu.Lock()
		h.closeBody()
		h.mu.Unlock()
	case *writeHandle:
		f.releaseWrite(h)
	}
}
