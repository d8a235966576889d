package streamfs

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mount-s3/mount-s3/impl/vfs"

	"github.com/mount-s3/mount-s3/impl/write"
	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/streamrule"
)

// writeHandle is a file opened for writing in streaming mode (S4, S10): a new object, or an
// existing one replaced with O_TRUNC (S6). Its bytes go to the store as they are written; the
// object appears when the file is closed or fsync'd.
type writeHandle struct {
	mu     sync.Mutex
	inode  *inode // constant
	path   string // constant
	opener uint32 // constant: the process that opened the file

	upload *write.Upload
	// state is the upload's progress as the rules see it (S4): written, failed, complete.
	// GUARDED_BY(mu)
	state streamrule.Upload
	// err is the upload's failure, returned again by write, flush and fsync. GUARDED_BY(mu)
	err error
	// written counts bytes accepted; stat reads it without taking mu. Updated under mu.
	written atomic.Int64
	// replaces: opened with O_TRUNC over an existing object (openForWrite), not created.
	// Constant.
	replaces bool
}

func (w *writeHandle) size() int64 { return w.written.Load() }

// Create creates a new file in parent and opens it for writing. A name that exists is EEXIST
// (S6). The mode and the caller's owner are not kept: streaming mode's attributes come from
// the mount options (S9).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Create(ctx context.Context, parent vfs.InodeID, name string, mode os.FileMode, c vfs.Caller) (vfs.Entry, vfs.HandleID, error) {
	pid := c.Pid
	path, err := f.newChildPath(ctx, parent, name, "create")
	if err != nil {
		return vfs.Entry{}, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if v := streamrule.Create(streamrule.Target{Exists: f.local[path] != nil}); !v.Allowed() {
		return vfs.Entry{}, 0, refused("create", path, v)
	}
	in := f.inodes.getOrCreate(path, keymap.File)
	if in.lookups > 0 && !in.local && in.writer == nil && f.readingLocked(path) {
		// The kernel still holds this number for a file that is gone (deleted) and a program
		// still reads. A new generation makes the kernel give the new file an inode of its
		// own, and fail the old one's I/O, rather than let the reader of the old file find the
		// new file's pages.
		f.gens++
		in.gen = f.gens
	}
	in.lookups.Add()
	h := f.startWriteLocked(in, pid)
	in.local = true
	f.local[path] = in
	delete(f.negative, path)
	f.localChangeLocked(path)
	return f.entryLocked(in), h, nil
}

// readingLocked reports whether a read handle of path is open.
// REQUIRES: f.mu held.
func (f *FS) readingLocked(path string) bool {
	reading := false
	f.handles.Each(func(_ vfs.HandleID, h any) bool {
		rh, ok := h.(*readHandle)
		reading = ok && rh.path == path
		return !reading
	})
	return reading
}

// newChildPath checks that name can be created in parent: the parent is a directory, the
// name is valid (K3), and nothing of that name exists locally or in the bucket.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) newChildPath(ctx context.Context, parent vfs.InodeID, name, op string) (string, error) {
	f.mu.Lock()
	dir := f.inodes.get(parent)
	if dir == nil || dir.kind != keymap.Dir {
		f.mu.Unlock()
		return "", vfs.NewError(op, name, vfs.CodeNotDir, "parent is not a directory")
	}
	path := keymap.Join(dir.path, name)
	// A local inode below the name keeps it a directory (S7).
	exists := f.local[path] != nil || f.hasLocalBelowLocked(path)
	f.mu.Unlock()
	if err := vfs.CheckName(op, path, name, vfs.CodeInvalid); err != nil {
		return "", err
	}
	if v := streamrule.Create(streamrule.Target{Exists: exists}); !v.Allowed() {
		return "", refused(op, path, v)
	}
	// The kernel looks a name up just before creating it; a fresh negative answer from that
	// lookup (its own, or its directory's listing) saves asking the store again.
	f.mu.Lock()
	now := f.clock.Now()
	until, known := f.negative[path]
	absent := known && now.Before(until) || f.absentFromListingLocked(dir.path, path, now)
	f.mu.Unlock()
	if absent {
		return path, nil
	}
	res, err := f.resolve(ctx, path)
	if err != nil {
		return "", err
	}
	if v := streamrule.Create(streamrule.Target{Exists: res.found}); !v.Allowed() {
		return "", refused(op, path, v)
	}
	return path, nil
}

// refused is the error for an operation a streaming rule refused.
func refused(op, path string, v streamrule.Verdict) error {
	return vfs.NewError(op, path, vfs.Classify(v.Errno), v.Reason+" ("+v.Rule+")")
}

// startWriteLocked opens a write handle on in.
// LOCKS_REQUIRED(f.mu)
func (f *FS) startWriteLocked(in *inode, pid uint32) vfs.HandleID {
	w := &writeHandle{inode: in, path: in.path, opener: pid, upload: write.New(f.cfg.Upload, keymap.FileKey(f.prefix, in.path))}
	in.writer = w
	in.mtime = f.clock.Now()
	f.uploadsStarted.Add(1)
	return f.addHandle(w)
}

// UploadStats reports the streaming uploads for the mount's metrics: in flight now (opened
// for writing and not yet completed or failed), completed, and failed.
func (f *FS) UploadStats() (inFlight int64, done, failed uint64) {
	done, failed = f.uploads.Load(), f.uploadFailures.Load()
	return int64(f.uploadsStarted.Load() - done - failed), done, failed
}

// failure is the last upload that failed, for `mount-s3 status`.
type failure struct {
	at  time.Time
	msg string
}

// LastError is the last failed upload (the path and the store's error) and when it failed;
// "" if none has.
func (f *FS) LastError() (string, time.Time) {
	if e := f.lastError.Load(); e != nil {
		return e.msg, e.at
	}
	return "", time.Time{}
}

// openForWrite replaces an existing object (streamrule.OpenWrite, S6): only with
// --allow-overwrite and O_TRUNC, and only when no one else is writing it (S2).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) openForWrite(in *inode, flags vfs.OpenFlags, pid uint32) (vfs.HandleID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := streamrule.Target{Exists: true, Dir: in.kind == keymap.Dir, BeingWritten: in.writer != nil}
	if v := streamrule.OpenWrite(t, flags.Trunc, f.rules()); !v.Allowed() {
		return 0, refused("open", in.path, v)
	}
	h := f.startWriteLocked(in, pid)
	in.writer.replaces = true
	in.local = true
	f.local[in.path] = in
	return h, nil
}

// Write writes data at off to a file opened for writing. Writes must be sequential (S4).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Write(ctx context.Context, h vfs.HandleID, off int64, data []byte) error {
	w, err := vfs.HandleOf[*writeHandle](&f.handles, h, "write")
	if err != nil {
		if _, isRead := f.handles.Get(h).(*readHandle); isRead {
			return vfs.NewError("write", "", vfs.CodeBadHandle, "file was opened for reading")
		}
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	next, v := w.state.Write(off, len(data))
	switch {
	case w.state.Failed && w.err != nil:
		return &vfs.Error{Op: "write", Path: w.path, Code: vfs.CodeIO, Err: w.err}
	case next.Failed:
		// Out of sequence: the upload is aborted (the uploader refuses it too). A part that
		// failed in the background meanwhile is the cause the program hears of: EIO.
		w.state = next
		w.err = w.upload.Write(context.WithoutCancel(ctx), off, data)
		f.log.Warn("write failed; the upload was aborted", "path", "/"+w.path, "error", w.err)
		if !errors.Is(w.err, write.ErrNotSequential) {
			return &vfs.Error{Op: "write", Path: w.path, Code: vfs.CodeIO, Err: w.err}
		}
		return refused("write", w.path, v)
	case !v.Allowed():
		return refused("write", w.path, v)
	}
	// A signal to the writing program (the kernel then interrupts the request) must not
	// abort the upload of everything written so far.
	if err := w.upload.Write(context.WithoutCancel(ctx), off, data); err != nil {
		w.state, w.err = w.state.Fail(), err
		f.log.Warn("write failed; the upload was aborted", "path", "/"+w.path, "error", err)
		return &vfs.Error{Op: "write", Path: w.path, Code: vfs.CodeIO, Err: err}
	}
	w.state = next
	w.written.Store(w.upload.Size())
	return nil
}

// Flush is called on every close(2) of a descriptor, by the process p closing it. When the
// process that opened the file closes it after writing, Flush completes the upload, after
// which the object is in the bucket (S4), and reports a failed upload. Other flushes do
// nothing: a child process that inherited the descriptor (any fork while a file is open)
// closes its copy long before the writer is done; shells open, dup2 and close the first
// descriptor before writing through the copy (`echo x > f`); touch(1) closes a file it never
// wrote. Such a file is completed at the last close (release) instead (S5,
// streamrule.Upload.Close).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Flush(ctx context.Context, h vfs.HandleID, p vfs.Process) error {
	w, err := vfs.HandleOf[*writeHandle](&f.handles, h, "flush")
	if err != nil {
		return nil // read and directory handles have nothing to flush
	}
	if p.ID() != w.opener {
		return nil
	}
	return f.commit(context.WithoutCancel(ctx), w, streamrule.Upload.Close)
}

// Fsync completes the upload of a file being written (S4); later writes fail.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Fsync(ctx context.Context, h vfs.HandleID) error {
	w, err := vfs.HandleOf[*writeHandle](&f.handles, h, "fsync")
	if err != nil {
		return nil
	}
	return f.commit(context.WithoutCancel(ctx), w, streamrule.Upload.Commit)
}

// commit completes w's upload, if step (the rule for this close or fsync) says so, and
// records the new object's metadata.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) commit(ctx context.Context, w *writeHandle, step func(streamrule.Upload) (streamrule.Upload, bool, streamrule.Verdict)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	next, commit, v := step(w.state)
	w.state = next
	if !commit {
		if !v.Allowed() {
			if w.err != nil {
				return &vfs.Error{Op: "close", Path: w.path, Code: vfs.CodeIO, Err: w.err}
			}
			return refused("close", w.path, v)
		}
		return nil
	}
	info, err := w.upload.Complete(ctx)
	if err != nil {
		w.state, w.err = w.state.Fail(), err
		f.uploadFailures.Add(1)
		f.lastError.Store(&failure{at: f.clock.Now(), msg: "/" + w.path + ": " + err.Error()})
		f.log.Warn("upload failed; the file was not written", "path", "/"+w.path, "error", err)
		// Whatever the store said, the program's data did not arrive: an I/O error.
		return &vfs.Error{Op: "close", Path: w.path, Code: vfs.CodeIO, Err: err}
	}
	f.uploads.Add(1)
	f.mu.Lock()
	in := w.inode
	in.size, in.etag = w.upload.Size(), info.ETag
	in.mtime = f.clock.Now()
	if !info.LastModified.IsZero() {
		in.mtime = info.LastModified
	}
	now := f.clock.Now()
	in.metaAt, in.validUntil = stampOf(now), stampOf(now.Add(f.cfg.MetadataTTL))
	f.localChangeLocked(in.path)
	// The committed key makes its local ancestors real directories of the bucket (S7).
	for dir, _ := keymap.Split(in.path); dir != ""; dir, _ = keymap.Split(dir) {
		if d := f.local[dir]; d != nil && d.kind == keymap.Dir {
			delete(f.local, dir)
			d.local = false
			d.validUntil = stampOf(f.clock.Now().Add(f.cfg.MetadataTTL))
		}
	}
	f.mu.Unlock()
	f.endWrite(w, true)
	return nil
}

// endWrite detaches w from its inode: the file is now the object in the bucket (committed),
// or, after a failure, whatever the bucket holds at the path.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) endWrite(w *writeHandle, committed bool) {
	f.mu.Lock()
	in := w.inode
	if in.writer != w {
		f.mu.Unlock()
		return
	}
	in.writer = nil
	in.local = false
	if f.local[in.path] == in {
		delete(f.local, in.path)
	}
	if !committed {
		in.validUntil, in.metaAt = stampOf(f.mounted), stampOf(f.clock.Now()) // ask the store what is there now
	}
	f.mu.Unlock()
	// After a failure the kernel still has the size the failed writer reached (it tracks
	// writes itself): without this, a reader of the bucket's version would stop at that size.
	if !committed && f.invalidate != nil {
		f.invalidate(in.id)
	}
}

// End commits the new files closed empty whose release never came: the kernel drops the
// RELEASEs it had queued when it unmounts, and an empty file is committed at its release
// (Flush), so `touch f; umount` would otherwise lose f. Left alone: a file written to after
// such a close (a program still writing when the connection was aborted: no partial
// object), and an O_TRUNC over an existing object (the object stays as it was rather than
// be emptied by a program that may not have been done).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) End() {
	var open []*writeHandle
	f.mu.Lock()
	f.handles.Each(func(_ vfs.HandleID, h any) bool {
		if w, ok := h.(*writeHandle); ok && !w.replaces {
			open = append(open, w)
		}
		return true
	})
	f.mu.Unlock()
	var pending []*writeHandle
	for _, w := range open {
		w.mu.Lock()
		if w.state.OwedAtEnd() {
			pending = append(pending, w)
		}
		w.mu.Unlock()
	}
	if len(pending) == 0 {
		return
	}
	// The process is exiting: a store that does not answer must not hold it for ever.
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var committed atomic.Int64
	slots := make(chan struct{}, 16)
	for _, w := range pending {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := f.commit(ctx, w, streamrule.Upload.Commit); err != nil {
				f.log.Warn("upload at unmount failed", "path", "/"+w.path, "error", err)
				return
			}
			committed.Add(1)
		}()
	}
	wg.Wait()
	f.log.Info("committed the files closed empty whose release the unmount dropped", "files", committed.Load(), "of", len(pending))
}

// endTimeout bounds End's uploads.
const endTimeout = 30 * time.Second

// releaseWrite is the last close of a write handle: an upload not yet completed (no flush
// came) is completed now.
// LOCKS_EXCLUDED(f.mu)
// A failed file stays visible, with what it accepted, until this last close; then the path
// shows whatever the bucket holds.
func (f *FS) releaseWrite(w *writeHandle) {
	if err := f.commit(context.Background(), w, streamrule.Upload.Commit); err != nil {
		f.log.Warn("upload at release failed", "path", "/"+w.path, "error", err)
		f.endWrite(w, false)
	}
}

// DirectIO reports whether the kernel should bypass its page cache for handle h (mount's
// DirectHandles): a write handle does. Written through the page cache, the new version's
// pages would be where a program still reading the old version (opened before the O_TRUNC)
// finds them, and it would get the old version's first pages and the new one's next. Without
// them its reads reach its own handle, which serves the version it opened (If-Match) or
// fails, as S3 does.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) DirectIO(h vfs.HandleID) bool {
	_, ok := f.handles.Get(h).(*writeHandle)
	return ok
}

// rules are the mount options the streaming rules depend on.
func (f *FS) rules() streamrule.Options {
	return streamrule.Options{AllowOverwrite: f.cfg.AllowOverwrite, AllowDelete: f.cfg.AllowDelete}
}
