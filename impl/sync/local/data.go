package local

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// openFile is the shared state of a data file while anything uses it. It is keyed by record
// id, so renames do not disturb open handles.
type openFile struct {
	id   uint64
	refs int // GUARDED_BY(Layer.mu)

	mu    sync.Mutex
	file  *os.File  // O_RDWR; shared by every user of the file
	size  int64     // GUARDED_BY(mu): the data file's size, synced or not
	mtime time.Time // GUARDED_BY(mu): of the last write
	wrote bool      // GUARDED_BY(mu): writes not yet in the record (Sync commits them)
	// sealed: a snapshot was taken since the last recorded intent, so the next write must
	// record a new generation first (invariants 1 and 4). GUARDED_BY(mu)
	sealed bool
}

// writeAt is the one place data reaches a data file; tests replace it to inject ENOSPC.
var writeAt = func(f *os.File, p []byte, off int64) (int, error) { return f.WriteAt(p, off) }

const tmpPrefix = ".tmp-"

// acquire opens (or shares) the data file of id. REQUIRES: l.mu held.
func (l *Layer) acquire(id uint64) (*openFile, error) {
	if f := l.files[id]; f != nil {
		f.refs++
		return f, nil
	}
	file, err := os.OpenFile(l.dataPath(id), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	f := &openFile{id: id, refs: 1, file: file, size: fi.Size()}
	l.filesMu.Lock()
	l.files[id] = f
	l.filesMu.Unlock()
	return f, nil
}

// acquireNew makes the empty data file of a new id and opens it. REQUIRES: l.mu held.
func (l *Layer) acquireNew(id uint64) (*openFile, error) {
	file, err := os.OpenFile(l.dataPath(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	f := &openFile{id: id, refs: 1, file: file}
	l.filesMu.Lock()
	l.files[id] = f
	l.filesMu.Unlock()
	return f, nil
}

// release drops a reference. REQUIRES: l.mu held.
func (l *Layer) release(f *openFile) {
	f.refs--
	if f.refs == 0 && l.files[f.id] == f {
		l.filesMu.Lock()
		delete(l.files, f.id)
		l.filesMu.Unlock()
		f.file.Close()
	}
}

// localFile is the visible file at path with its data local.
func localFile(tx *bolt.Tx, path string) (*record, error) {
	r, err := visibleRec(tx, path)
	if err != nil {
		return nil, err
	}
	switch {
	case r.Kind == KindDir:
		return nil, ErrIsDir
	case r.Kind != KindFile:
		return nil, ErrInvalid
	case r.State.Data != syncrule.LocalData:
		return nil, ErrNoData
	}
	return r, nil
}

// Handle is a file opened for writing (and reading).
type Handle struct {
	l      *Layer
	f      *openFile
	path   string // for errors only: the record may be renamed while open
	closed bool
	// readOnly: opened by OpenRead; it records no intent, so it must never change the file.
	readOnly bool
	// created: the create that made the file, answered before its record was committed
	// (pending.go); nil otherwise. Sync waits for that commit: until it, the data file
	// belongs to no record, so writes may go to it but nothing is durable.
	created *pendingCreate
}

// createdErr waits for the commit of the record of h's file, when a create answered before it
// made the file, and returns that commit's error.
func (h *Handle) createdErr() error {
	if h.created == nil {
		return nil
	}
	<-h.created.done
	return h.created.err
}

// OpenRead opens the local data of the file at path for reading. Like a write handle it shares
// the data file with every other user, so it sees their writes at once, keeps reading after
// the file is renamed or unlinked, and keeps Expire from dropping the data while open. It
// records no change: the file stays clean. ErrNoData if the bytes are not local.
func (l *Layer) OpenRead(path string) (*Handle, error) {
	f, err := l.acquireLocal(path)
	if err != nil {
		return nil, perr("open", path, err)
	}
	return &Handle{l: l, f: f, path: path, readOnly: true}, nil
}

// StatOpenRead is Stat and, when the path is a regular file whose bytes are local, OpenRead,
// in one read of the store: `cat` of many small files opens each one once, and the kernel's
// open is the whole cost of reading a small file. h is nil when the path is not a regular
// file or its bytes are not local; err is Stat's or, for the open, OpenRead's.
func (l *Layer) StatOpenRead(path string) (info Info, h *Handle, err error) {
	// Only a pending create at path changes what is read here (pending.go): the open of a
	// file waits for nothing else, and a directory is given its pending creates' mtime.
	c, dirAt := l.pending.lookup(path)
	if c != nil {
		l.pending.settle()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var r *record
	err = l.viewCommitted(func(tx *bolt.Tx) (err error) {
		if r, err = visibleRec(tx, path); err != nil {
			return err
		}
		info = statInfoTx(tx, r, path)
		return nil
	})
	if err != nil {
		return Info{}, nil, perr("stat", path, err)
	}
	// l.mu is held from the read of the record to here: no open of the file for writing, and
	// no close's release, comes in between, so the open file's size and mtime, if it is open,
	// are the ones to answer, as in stat.
	var f *openFile
	if r.Kind == KindFile && r.State.Data == syncrule.LocalData {
		if f, err = l.acquire(r.ID); err != nil {
			return Info{}, nil, perr("open", path, err)
		}
		h = &Handle{l: l, f: f, path: path, readOnly: true}
	} else if r.ID != 0 {
		l.filesMu.RLock()
		f = l.files[r.ID]
		l.filesMu.RUnlock()
	}
	if f != nil {
		f.overlay(&info)
	}
	pendingMtime(&info, dirAt)
	return info, h, nil
}

// acquireLocal opens (or shares) the data file of the visible file at path, whose bytes must
// be local (ErrNoData otherwise). The caller releases it.
func (l *Layer) acquireLocal(path string) (*openFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, err := l.localFileID(path)
	if err != nil {
		return nil, err
	}
	return l.acquire(id)
}

// localFileID is the id of the visible file at path, whose bytes must be local.
// REQUIRES: l.mu held (the id stays the file's until the caller acquires it).
func (l *Layer) localFileID(path string) (id uint64, err error) {
	err = l.view(func(tx *bolt.Tx) error {
		r, err := localFile(tx, path)
		if err == nil {
			id = r.ID
		}
		return err
	})
	return id, err
}

// BeginWrite opens path for writing. Before it returns, the change is recorded durably: the
// record's generation is bumped and committed, so the file is dirty before any byte of the
// change reaches its data file (invariant 1).
func (l *Layer) BeginWrite(path string) (*Handle, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, err := l.localFileID(path)
	if err != nil {
		return nil, perr("open", path, err)
	}
	f, err := l.acquire(id)
	if err != nil {
		return nil, perr("open", path, err)
	}
	// The intent and the unsealing are one step to a snapshot, which takes f.mu: one taken
	// between them would seal the new generation and be undone, and the writes after it
	// would record no intent, so its MarkUploaded would make them clean (invariants 1, 4).
	f.mu.Lock()
	err = l.updateShared(func(tx *bolt.Tx) error {
		if _, err := localFile(tx, path); err != nil {
			return err
		}
		// Size is informational here (Sync commits the real one). Every name of the file
		// changes with it: each is its own object (hard links, Link).
		return eachLinkTx(tx, id, func(_ string, r *record) error {
			r.State, _ = syncrule.Next(r.State, syncrule.LocalWrite{At: l.now(), Size: r.State.Size}, noParams)
			return nil
		})
	})
	if err != nil {
		f.mu.Unlock()
		l.release(f)
		return nil, perr("open", path, err)
	}
	crashHook("begin-write-after-intent")
	f.sealed = false
	f.mu.Unlock()
	return &Handle{l: l, f: f, path: path}, nil
}

// intentLocked records a new generation for f's record before a write after a snapshot.
// REQUIRES: l.mu and f.mu held.
func (l *Layer) intentLocked(f *openFile) error {
	err := l.updateShared(func(tx *bolt.Tx) error {
		// Unlinked while open (no name left): writes go to an orphan, as in POSIX.
		return eachLinkTx(tx, f.id, func(_ string, r *record) error {
			r.State, _ = syncrule.Next(r.State, syncrule.LocalWrite{At: l.now(), Size: f.size}, noParams)
			return nil
		})
	})
	if err == nil {
		f.sealed = false
	}
	return err
}

// lockForChange locks f for a data change, recording a new intent first if a snapshot sealed
// the current generation. On success f.mu is held.
func (h *Handle) lockForChange() error {
	f, l := h.f, h.l
	f.mu.Lock()
	if !f.sealed {
		return nil
	}
	f.mu.Unlock()
	l.mu.Lock() // lock order: l.mu before f.mu
	defer l.mu.Unlock()
	f.mu.Lock()
	if f.sealed {
		if err := l.intentLocked(f); err != nil {
			f.mu.Unlock()
			return err
		}
	}
	return nil
}

// WriteAt writes p at off, extending the file with zeros if off is past its end. A full disk
// surfaces as an error wrapping syscall.ENOSPC; the file stays dirty and what earlier closes
// made durable is untouched.
func (h *Handle) WriteAt(p []byte, off int64) (int, error) {
	if h.closed || h.readOnly || off < 0 {
		return 0, perr("write", h.path, ErrInvalid)
	}
	if err := h.lockForChange(); err != nil {
		return 0, perr("write", h.path, err)
	}
	defer h.f.mu.Unlock()
	n, err := writeAt(h.f.file, p, off)
	if n > 0 {
		h.f.size = max(h.f.size, off+int64(n))
		h.f.mtime, h.f.wrote = h.l.now(), true
	}
	return n, perr("write", h.path, err)
}

// Truncate sets the file's size, cutting or extending with zeros.
func (h *Handle) Truncate(size int64) error {
	if h.closed || h.readOnly || size < 0 {
		return perr("truncate", h.path, ErrInvalid)
	}
	if err := h.lockForChange(); err != nil {
		return perr("truncate", h.path, err)
	}
	defer h.f.mu.Unlock()
	if err := h.f.file.Truncate(size); err != nil {
		return perr("truncate", h.path, err)
	}
	h.f.size, h.f.mtime, h.f.wrote = size, h.l.now(), true
	return nil
}

// ReadAt reads from the file, including writes not yet synced.
func (h *Handle) ReadAt(p []byte, off int64) (int, error) {
	if h.closed {
		return 0, perr("read", h.path, ErrInvalid)
	}
	return h.f.file.ReadAt(p, off)
}

// Sync makes the file's data and record durable: the data file is fsync'd first, then size
// and mtime are committed (invariant 2). When it returns nothing written so far can be lost.
func (h *Handle) Sync() error {
	if h.closed {
		return perr("fsync", h.path, ErrInvalid)
	}
	if err := h.createdErr(); err != nil {
		return err
	}
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	_, err := h.l.syncLocked(h.f, "")
	return perr("fsync", h.path, err)
}

// syncLocked fsyncs f and commits its size and mtime to the record of every name of the file;
// it returns the committed state of the record at path ("": of its first name).
// REQUIRES: f.mu held.
func (l *Layer) syncLocked(f *openFile, path string) (syncrule.State, error) {
	stateOf := func(tx *bolt.Tx) (syncrule.State, error) {
		p := path
		if !idHasPath(tx, f.id, p) {
			paths := pathsOfID(tx, f.id)
			switch {
			case len(paths) == 0:
				return syncrule.State{}, nil
			case path != "" && len(paths) > 1:
				// No longer a name of this linked file: another name's generation must not
				// pass for this path's.
				return syncrule.State{}, ErrNotFound
			}
			// Its one name, renamed since the caller looked it up: the record is where the
			// id says.
			p = paths[0]
		}
		r, err := getRec(tx, p)
		if err != nil || r == nil {
			return syncrule.State{}, err
		}
		return r.State, nil
	}
	if !f.wrote {
		// Nothing since the last sync: its fsync and commit still hold. close(2) after fsync(2),
		// and the release after a flush, then cost no disk flush.
		var st syncrule.State
		err := l.db.View(func(tx *bolt.Tx) (err error) {
			st, err = stateOf(tx)
			return err
		})
		return st, err
	}
	if err := l.syncData(f); err != nil {
		return syncrule.State{}, err
	}
	crashHook("sync-after-fsync")
	var st syncrule.State
	err := l.updateShared(func(tx *bolt.Tx) error {
		if _, ok := pathOfID(tx, f.id); !ok {
			return ErrNotFound
		}
		err := eachLinkTx(tx, f.id, func(_ string, r *record) error {
			r.State.Size = f.size
			r.Attr.Mtime, r.Attr.Ctime = f.mtime, f.mtime
			return nil
		})
		if err != nil {
			return err
		}
		st, err = stateOf(tx)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return st, nil // unlinked while open: nothing to keep
	}
	if err == nil {
		f.wrote = false
	}
	return st, err
}

// syncData makes f's bytes durable, and its entry in data/ (entrySync): what every commit of
// f's size must come after (invariant 2). REQUIRES: f.mu held.
func (l *Layer) syncData(f *openFile) error {
	if err := f.file.Sync(); err != nil {
		return err
	}
	return l.entries.wait(filepath.Join(l.dir, DataDir))
}

// Sync makes the writes of every open handle of the file at path durable (fsync(2) on any
// descriptor of a file syncs all of it). The path-level operations are durable on return.
func (l *Layer) Sync(path string) error {
	l.mu.Lock()
	var f *openFile
	err := l.view(func(tx *bolt.Tx) error {
		r, err := localFile(tx, path)
		if err == nil && l.files[r.ID] != nil {
			f, err = l.acquire(r.ID)
		}
		return err
	})
	l.mu.Unlock()
	if err != nil || f == nil {
		return perr("fsync", path, err)
	}
	f.mu.Lock()
	_, err = l.syncLocked(f, path)
	f.mu.Unlock()
	l.mu.Lock()
	l.release(f)
	l.mu.Unlock()
	return perr("fsync", path, err)
}

// Close syncs (close means durable, Y4) and releases the handle.
func (h *Handle) Close() error {
	if h.closed {
		return nil
	}
	var err error
	if !h.readOnly {
		err = h.Sync()
	}
	h.closed = true
	h.l.mu.Lock()
	h.l.release(h.f)
	h.l.mu.Unlock()
	return err
}

// WriteAt writes p at off in the file at path and makes it durable before returning: the
// path-level form of BeginWrite, Handle.WriteAt, Handle.Close.
func (l *Layer) WriteAt(path string, p []byte, off int64) (int, error) {
	h, err := l.BeginWrite(path)
	if err != nil {
		return 0, err
	}
	n, err := h.WriteAt(p, off)
	return n, errors.Join(err, h.Close())
}

// Truncate sets the size of the file at path, durably.
func (l *Layer) Truncate(path string, size int64) error {
	h, err := l.BeginWrite(path)
	if err != nil {
		return err
	}
	return errors.Join(h.Truncate(size), h.Close())
}

// ReadAt reads the file at path. It fails with ErrNoData if the bytes are not local.
func (l *Layer) ReadAt(path string, p []byte, off int64) (int, error) {
	f, err := l.acquireLocal(path)
	if err != nil {
		return 0, perr("read", path, err)
	}
	n, err := f.file.ReadAt(p, off)
	l.mu.Lock()
	l.release(f)
	l.mu.Unlock()
	return n, err
}

// Snapshot returns an immutable copy of the file's data at one instant, with the generation
// and size it holds (invariant 3). It is taken under the file's lock after a Sync, so the
// record matches the bytes; the copy is a reflink where the file system has them. Later
// writes record a new generation first, so MarkUploaded of this one cannot make them clean.
// The copy is unlinked at once: it lives until closed and a crash leaves nothing behind. The
// ReadCloser is an *os.File, so it is also an io.ReaderAt for ranged multipart uploads.
func (l *Layer) Snapshot(path string) (io.ReadCloser, uint64, int64, error) {
	f, err := l.acquireLocal(path)
	if err != nil {
		return nil, 0, 0, perr("snapshot", path, err)
	}
	defer func() {
		l.mu.Lock()
		l.release(f)
		l.mu.Unlock()
	}()
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := l.syncLocked(f, path)
	if err != nil {
		return nil, 0, 0, perr("snapshot", path, err)
	}
	snap, err := os.CreateTemp(filepath.Join(l.dir, snapDir), fmt.Sprintf("%016x-%d-", f.id, st.Gen))
	if err != nil {
		return nil, 0, 0, perr("snapshot", path, err)
	}
	os.Remove(snap.Name())
	if err := clone(snap, f.file, f.size); err != nil {
		snap.Close()
		return nil, 0, 0, perr("snapshot", path, err)
	}
	f.sealed = true
	return snap, st.Gen, f.size, nil
}

// clone copies size bytes of src into the empty dst and rewinds it.
func clone(dst, src *os.File, size int64) error {
	if reflink(dst, src) != nil {
		if _, err := io.Copy(dst, io.NewSectionReader(src, 0, size)); err != nil {
			return err
		}
	}
	_, err := dst.Seek(0, io.SeekStart)
	return err
}

// copyData makes data file dst a durable copy of data file src (a reflink where the file
// system has them), for a linked file's name that leaves its other names with the bytes. It
// returns the copy's size.
func (l *Layer) copyData(src, dst uint64) (int64, error) {
	in, err := os.Open(l.dataPath(src))
	if err != nil {
		return 0, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return 0, err
	}
	out, err := os.OpenFile(l.dataPath(dst), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	err = clone(out, in, fi.Size())
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(out.Name()))
	}
	if err != nil {
		os.Remove(out.Name())
	}
	return fi.Size(), err
}
