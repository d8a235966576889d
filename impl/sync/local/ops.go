package local

import (
	"fmt"
	"os"
	"time"

	"github.com/mount-s3/mount-s3/spec/posixmeta"
	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// noParams: the local events (LocalWrite, LocalDelete) do not depend on the tunables.
var noParams = syncrule.Params{}

// update runs fn in one committed bbolt transaction (fsync'd by bbolt before Update returns),
// after the pending creates' commits (pending.go).
func (l *Layer) update(fn func(tx *bolt.Tx) error) error {
	if l.closed.Load() {
		return ErrClosed
	}
	l.pending.settle()
	return l.db.Update(fn)
}

// updateShared is update for an idempotent fn, whose commit may be shared with other callers'
// (commit.go): the changes a close, a create or an open for writing waits on. It need not
// wait for the pending creates: their changes are queued before fn's.
func (l *Layer) updateShared(fn func(tx *bolt.Tx) error) error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.commits.update(fn)
}

// view runs fn in a read transaction, on a store that has the pending creates' records
// (pending.go). It needs no lock: bbolt gives every read transaction a consistent snapshot
// while one update commits, so the read-only methods that call it without l.mu never wait for
// a commit's fsync (an import of many small files commits one each).
func (l *Layer) view(fn func(tx *bolt.Tx) error) error {
	l.pending.settle()
	return l.viewCommitted(fn)
}

// viewOf is view for a read of the record at path alone: it waits for a pending create only
// when path is one.
func (l *Layer) viewOf(path string, fn func(tx *bolt.Tx) error) error {
	if l.pending.has(path) {
		l.pending.settle()
	}
	return l.viewCommitted(fn)
}

// viewCommitted is view without waiting for the pending creates: for a read of records they
// do not change, or one that adds them itself (stat).
func (l *Layer) viewCommitted(fn func(tx *bolt.Tx) error) error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.db.View(fn)
}

func (l *Layer) now() time.Time { return l.clock.Now() }

// newRecordTx puts a new record at path with its first change recorded (the intent of
// invariant 1). A tombstone at path of the same class is reused, so the owed delete folds
// into the upload (syncrule); one of the other class has a different key and its delete is
// queued instead.
func (l *Layer) newRecordTx(tx *bolt.Tx, path string, kind Kind, a Attr, target string) (*record, error) {
	return l.placeRecordTx(tx, path, &record{Kind: kind, Attr: a, Target: target}, int64(len(target)))
}

// placeRecordTx is newRecordTx for the record n (its Kind, Attr, Target, and ID: 0 gets a new
// one for a file, anything else makes n another name of that id's file, see Link); size is
// the content's.
func (l *Layer) placeRecordTx(tx *bolt.Tx, path string, n *record, size int64) (*record, error) {
	kind, a := n.Kind, n.Attr
	if path == "" || !keymap.ValidPath(path) {
		return nil, ErrInvalid
	}
	if l.inLostFound(path) {
		return nil, ErrPermitted // only conflicts put files there (C4, C5)
	}
	if err := lookupDir(tx, path); err != nil {
		return nil, err
	}
	old, err := getRec(tx, path)
	if err != nil {
		return nil, err
	}
	var st syncrule.State
	if old != nil {
		if old.visible() {
			return nil, ErrExists
		}
		if old.Kind.isDir() == kind.isDir() {
			st = old.State
		} else if err := l.queueDeleteTx(tx, path, old); err != nil {
			return nil, err
		}
	}
	a.Ctime = a.Mtime
	if err := touchParentTx(tx, path, l.now()); err != nil {
		return nil, err
	}
	r := &record{Kind: kind, Attr: a, Target: n.Target, ID: n.ID}
	if kind == KindDir {
		// Nothing in the bucket can be under a directory made here, provided its parent's
		// listing is in (ImportListing would have shown the name, and this create would be
		// EEXIST). Under a parent not imported yet the key may hide objects, so the new
		// directory is not imported either and its first access lists it.
		dir, _ := keymap.Split(path)
		parent, err := getRec(tx, dir)
		if err != nil {
			return nil, err
		}
		r.Imported = parent.Imported
	}
	st, _ = syncrule.Next(st, syncrule.LocalWrite{At: l.now(), Size: size}, noParams)
	r.State = st
	if kind == KindFile && r.ID == 0 {
		if r.ID, err = l.newDataID(tx); err != nil {
			return nil, err
		}
	}
	return r, putRec(tx, path, r)
}

// Create makes an empty regular file (exclusive: ErrExists if path exists). Its empty data
// file is made before the record is committed, so no committed record ever lacks one while
// the layer runs; after a crash, Open recreates one whose entry was not durable yet, and
// removes one whose record was not committed.
//
// It does not hold l.mu across its commit, so creates in different directories share commits
// (commit.go): the transaction checks everything the create depends on, and a new record's
// data file is named by an id no other record has.
func (l *Layer) Create(path string, mode, uid, gid uint32) (Info, error) {
	return l.createFile(path, mode, uid, gid)
}

// CreateOpen is Create and BeginWrite in one: the creating transaction already recorded the
// change (invariant 1), so the handle needs no second one. creat(2) is the common way to write
// a new file, and each commit is a disk flush.
//
// A file new to the layer (no record at path, not even a tombstone) is answered before its
// record is committed (pending.go): the handle's Sync and Close wait for that commit.
func (l *Layer) CreateOpen(path string, mode, uid, gid uint32) (Info, *Handle, error) {
	if info, h, ok, err := l.createPending(path, mode, uid, gid); ok {
		return info, h, err
	}
	info, err := l.createFile(path, mode, uid, gid)
	if err != nil {
		return Info{}, nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.acquire(info.ID)
	if err != nil {
		return Info{}, nil, perr("create", path, err)
	}
	// Between the commit and the acquire, the engine may have snapshot the new file for its
	// upload (a sealed openFile released since leaves no trace but the record's state: the
	// engine records the upload in flight before it takes the snapshot): then the first write
	// must record a new generation, or the upload's MarkUploaded would make it clean
	// (invariants 1 and 4). Any change of the state the create committed seals.
	f.mu.Lock()
	err = l.view(func(tx *bolt.Tx) error {
		r, err := getRec(tx, path)
		if err != nil {
			return err
		}
		was := info.State
		if r == nil || r.ID != info.ID || r.State.Gen != was.Gen || r.State.CleanGen != was.CleanGen ||
			r.State.InFlight != was.InFlight || r.State.InFlightGen != was.InFlightGen {
			f.sealed = true
		}
		return nil
	})
	f.mu.Unlock()
	if err != nil {
		l.release(f)
		return Info{}, nil, perr("create", path, err)
	}
	return info, &Handle{l: l, f: f, path: path}, nil
}

// SyncNamespace returns once every create answered so far has its record committed: fsync(2)
// of a directory, after which the names made in it survive a crash.
func (l *Layer) SyncNamespace() error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.pending.settle()
}

// createPending is CreateOpen of a file new to the layer, answered before its record is
// committed; ok is false when path is not such a name (a tombstone, a name in lost+found, a
// parent that is not a visible directory), for CreateOpen's committed create to decide.
func (l *Layer) createPending(path string, mode, uid, gid uint32) (info Info, h *Handle, ok bool, err error) {
	if path == "" || !keymap.ValidPath(path) || l.inLostFound(path) {
		return Info{}, nil, false, nil
	}
	// l.mu from the check to the queued commit: the importer and the watcher change records
	// under it (after settle), so none can put a record at path between the two, which would
	// fail the commit after the create was answered.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return Info{}, nil, true, perr("create", path, ErrClosed)
	}
	if l.pending.has(path) {
		return Info{}, nil, true, perr("create", path, ErrExists)
	}
	var seq uint64
	var dirImp, exists bool
	err = l.viewCommitted(func(tx *bolt.Tx) error {
		if err := lookupDir(tx, path); err != nil {
			return err
		}
		old, err := getRec(tx, path)
		if err != nil || old != nil {
			exists = old != nil && old.visible()
			return errNotNew
		}
		dir, _ := keymap.Split(path)
		if p, err := getRec(tx, dir); err == nil && p != nil {
			dirImp = p.Imported
		}
		seq = tx.Bucket(bIDs).Sequence()
		return nil
	})
	switch {
	case exists:
		return Info{}, nil, true, perr("create", path, ErrExists)
	case err != nil:
		return Info{}, nil, false, nil
	}
	now := l.now()
	a := Attr{Mode: mode & 0o7777, UID: uid, GID: gid, Mtime: now, Ctime: now}
	st, _ := syncrule.Next(syncrule.State{}, syncrule.LocalWrite{At: now, Size: 0}, noParams)
	rec := record{Kind: KindFile, Attr: a, ID: l.reserveID(seq), State: st}
	c := &pendingCreate{path: path, info: rec.info(path), dirImp: dirImp, done: make(chan struct{})}
	f, err := l.acquireNew(rec.ID)
	if err != nil {
		return Info{}, nil, true, perr("create", path, err)
	}
	l.entries.add()
	if !l.pending.add(c) {
		l.release(f)
		os.Remove(l.dataPath(rec.ID))
		return Info{}, nil, true, perr("create", path, ErrExists)
	}
	l.commits.start(func(tx *bolt.Tx) error {
		// Checked again: a change queued with the committer before this one, and not seen by
		// the check (a committed create of the same name), can have taken the name.
		if err := lookupDir(tx, path); err != nil {
			return err
		}
		if old, err := getRec(tx, path); err != nil {
			return err
		} else if old != nil {
			return ErrExists
		}
		if err := touchParentTx(tx, path, now); err != nil {
			return err
		}
		if b := tx.Bucket(bIDs); b.Sequence() < rec.ID {
			if err := b.SetSequence(rec.ID); err != nil {
				return err
			}
		}
		r := rec
		return putRec(tx, path, &r)
	}, func(err error) {
		if err != nil {
			c.err = perr("create", path, fmt.Errorf("%w (%v)", ErrCreateLost, err))
			os.Remove(l.dataPath(rec.ID)) // no record names it; the open handle keeps it
		}
		l.pending.remove(c)
		if err == nil {
			crashHook("create-after-intent")
		}
		close(c.done)
	})
	return c.info, &Handle{l: l, f: f, path: path, created: c}, true, nil
}

func (l *Layer) createFile(path string, mode, uid, gid uint32) (Info, error) {
	var r *record
	err := l.updateShared(func(tx *bolt.Tx) (err error) {
		r, err = l.newRecordTx(tx, path, KindFile, Attr{Mode: mode & 0o7777, UID: uid, GID: gid, Mtime: l.now()}, "")
		if err != nil {
			return err
		}
		// A run that rolls back leaves an empty file under an id never used again, which
		// Open's sweep removes.
		return createUnsynced(l.dataPath(r.ID))
	})
	if err != nil {
		// A data file made for a run that did not commit is left to Open's sweep: its id is
		// never handed out again (newDataID).
		return Info{}, perr("create", path, err)
	}
	l.entries.add()
	crashHook("create-after-intent")
	return r.info(path), nil
}

// Mkdir makes a directory (its marker object is owed, Y8).
func (l *Layer) Mkdir(path string, mode, uid, gid uint32) (Info, error) {
	return l.mknode("mkdir", path, KindDir, Attr{Mode: mode & 0o7777, UID: uid, GID: gid}, "")
}

// Symlink makes a symbolic link at path pointing at target (an object whose body is the
// target, Y3).
func (l *Layer) Symlink(target, path string, uid, gid uint32) (Info, error) {
	return l.mknode("symlink", path, KindSymlink, Attr{Mode: 0o777, UID: uid, GID: gid}, target)
}

// Mknod makes a FIFO, device or socket (kind.Special()): an empty object whose metadata says
// what it is (Y3); rdev is a device's number.
func (l *Layer) Mknod(path string, kind Kind, mode, rdev, uid, gid uint32) (Info, error) {
	if !kind.Special() {
		return Info{}, perr("mknod", path, ErrInvalid)
	}
	if kind != KindCharDevice && kind != KindBlockDevice {
		rdev = 0
	}
	return l.mknode("mknod", path, kind, Attr{Mode: mode & 0o7777, UID: uid, GID: gid, Rdev: rdev}, "")
}

func (l *Layer) mknode(op, path string, k Kind, a Attr, target string) (Info, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a.Mtime = l.now()
	var r *record
	err := l.update(func(tx *bolt.Tx) (err error) {
		r, err = l.newRecordTx(tx, path, k, a, target)
		return err
	})
	if err != nil {
		return Info{}, perr(op, path, err)
	}
	return r.info(path), nil
}

// Stat returns the record at path ("" is the root). For a file open for writing, size and
// mtime include writes not yet synced.
func (l *Layer) Stat(path string) (Info, error) { return l.stat(path, nil) }

// LookupIn is Lookup that also reports whether dir's listing is in the layer (Imported), in
// one read of the store: a lookup needs both, and `ls -l` sends one for every entry.
func (l *Layer) LookupIn(dir, name string) (info Info, dirImported bool, err error) {
	if !keymap.ValidName(name) {
		return Info{}, false, perr("lookup", keymap.Join(dir, name), ErrNotFound)
	}
	info, err = l.stat(keymap.Join(dir, name), &dirImported)
	return info, dirImported, err
}

// stat is Stat; with dirImported set, it also reads whether path's directory is imported.
func (l *Layer) stat(path string, dirImported *bool) (Info, error) {
	// A pending create answers for its path, and a directory's pending creates for its mtime
	// (pending.go): the kernel looks up the next name, and revalidates the directory, while the
	// last create's commit runs. Read before the store: a create that leaves the table after
	// this read is in the store the view reads.
	//
	// The open file is looked up under the same read lock as the record (or the pending
	// create) is read: a close commits the size to the record and then drops the open file,
	// and a stat that read the record before the one and looked after the other answered the
	// size before the writes, which the kernel believes (a reader of the file just closed then
	// read a prefix).
	l.filesMu.RLock()
	c, dirAt := l.pending.lookup(path)
	if c != nil {
		info := c.info
		if dirImported != nil {
			*dirImported = c.dirImp
		}
		statHook()
		f := l.files[info.ID]
		l.filesMu.RUnlock()
		if f != nil {
			f.overlay(&info)
		}
		return info, nil
	}
	var r *record
	var info Info
	err := l.viewCommitted(func(tx *bolt.Tx) (err error) {
		if dirImported == nil {
			r, err = visibleRec(tx, path)
		} else {
			r, *dirImported, err = visibleRecImported(tx, path)
		}
		if err != nil {
			return err
		}
		info = statInfoTx(tx, r, path)
		return nil
	})
	if err != nil {
		l.filesMu.RUnlock()
		return Info{}, perr("stat", path, err)
	}
	statHook()
	f := l.files[r.ID]
	l.filesMu.RUnlock()
	if r.ID != 0 && f != nil {
		f.overlay(&info)
	}
	pendingMtime(&info, dirAt)
	return info, nil
}

// pendingMtime puts in info, a directory's, the time at of its latest pending create (zero:
// none), as its mtime and ctime: what the create's commit will set (touchParentTx).
func pendingMtime(info *Info, at time.Time) {
	if info.Kind == KindDir && !at.IsZero() {
		info.Attr.Mtime, info.Attr.Ctime = at, at
	}
}

// statInfoTx is what a stat answers of r, the record at path: its Info, with a directory's
// link count.
func statInfoTx(tx *bolt.Tx, r *record, path string) Info {
	info := r.infoTx(tx, path)
	if r.Kind == KindDir {
		info.Nlink = dirLinksTx(tx, path)
	}
	return info
}

// overlay puts in info the size of f, open on its record, and the mtime of writes not synced
// yet: what a stat answers while the file is open.
func (f *openFile) overlay(info *Info) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info.Size = f.size
	if f.wrote {
		info.Attr.Mtime, info.Attr.Ctime = f.mtime, f.mtime
	}
}

// statHook runs in Stat between reading the record and looking for the open file; tests use
// it to widen that window.
var statHook = func() {}

// Lookup is Stat of name in directory dir.
func (l *Layer) Lookup(dir, name string) (Info, error) {
	if !keymap.ValidName(name) {
		return Info{}, perr("lookup", keymap.Join(dir, name), ErrNotFound)
	}
	return l.Stat(keymap.Join(dir, name))
}

// Readlink returns a symlink's target.
func (l *Layer) Readlink(path string) (string, error) {
	info, err := l.Stat(path)
	if err != nil {
		return "", err
	}
	if info.Kind != KindSymlink {
		return "", perr("readlink", path, ErrInvalid)
	}
	return info.Target, nil
}

// List returns the visible entries of directory dir in byte order of their names (K6): the
// node keys of one directory differ only in the name, so bbolt's key order is that order.
func (l *Layer) List(dir string) ([]Info, error) {
	var out []Info
	err := l.view(func(tx *bolt.Tx) error {
		d, err := visibleRec(tx, dir)
		if err != nil {
			return err
		}
		if d.Kind != KindDir {
			return ErrNotDir
		}
		p := childPrefix(dir)
		c := tx.Bucket(bNodes).Cursor()
		for k, v := c.Seek(p); k != nil && hasPrefix(k, p); k, v = c.Next() {
			if len(k) == len(p) {
				continue // the root's own key
			}
			path := pathOfNodeKey(k)
			r, err := decodeRec(path, v)
			if err != nil {
				return err
			}
			if r.visible() {
				out = append(out, r.infoTx(tx, path))
			}
		}
		return nil
	})
	return out, perr("list", dir, err)
}

func hasPrefix(k, p []byte) bool { return len(k) >= len(p) && string(k[:len(p)]) == string(p) }

// Remove unlinks a file or symlink. If the bucket has the object the record stays as a
// tombstone (the delete is owed, Y7); a file the bucket never had is simply gone. The data
// file is removed after the commit: a crash in between leaves an orphan that Open removes.
func (l *Layer) Remove(path string) error {
	return l.remove("unlink", path, false)
}

// Rmdir removes an empty directory (Y8). The root and lost+found cannot be removed (C5).
func (l *Layer) Rmdir(path string) error {
	return l.remove("rmdir", path, true)
}

func (l *Layer) remove(op, path string, dir bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var id uint64
	err := l.update(func(tx *bolt.Tx) error {
		if path == "" || dir && path == syncrule.LostFoundDir(l.fsid) {
			return ErrPermitted // the root, and lost+found (C5)
		}
		r, err := visibleRec(tx, path)
		if err != nil {
			return err
		}
		switch {
		case dir && r.Kind != KindDir:
			return ErrNotDir
		case !dir && r.Kind == KindDir:
			return ErrIsDir
		}
		if dir {
			if busy, err := hasChildren(tx, path); err != nil || busy {
				if err == nil {
					err = ErrNotEmpty
				}
				return err
			}
		}
		id = r.ID
		if err := touchParentTx(tx, path, l.now()); err != nil {
			return err
		}
		if err := l.releaseTx(tx, path, r); err != nil {
			return err
		}
		if err := l.delRec(tx, path, r); err != nil {
			return err
		}
		if id != 0 && len(pathsOfID(tx, id)) > 0 {
			// The file keeps its other names, and its data; unlink(2) changes its ctime.
			if err := l.touchLinksTx(tx, id); err != nil {
				return err
			}
			id = 0
		}
		st, _ := syncrule.Next(r.State, syncrule.LocalDelete{At: l.now()}, noParams)
		if st.Absent() {
			return nil
		}
		return putRec(tx, path, &record{Kind: r.Kind, Attr: r.Attr, State: st})
	})
	if err != nil {
		return perr(op, path, err)
	}
	if id != 0 {
		os.Remove(l.dataPath(id))
	}
	return nil
}

// Chmod, Chown and Utimens change attributes only: a metadata-only change (Y7), exported by a
// CopyObject onto itself unless the data changed too.
func (l *Layer) Chmod(path string, mode uint32) error {
	return l.setattr("chmod", path, func(a *Attr) error { a.Mode = mode & 0o7777; return nil })
}

func (l *Layer) Chown(path string, uid, gid uint32) error {
	return l.setattr("chown", path, func(a *Attr) error { a.UID, a.GID = uid, gid; return nil })
}

// Utimens sets the modification time, and the access time when atime is not nil (kept
// locally: S3 has no place for it, and reads do not update it, as with noatime).
func (l *Layer) Utimens(path string, mtime time.Time, atime *time.Time) error {
	return l.setattr("utimens", path, func(a *Attr) error {
		a.Mtime = mtime
		if atime != nil {
			a.Atime = *atime
		}
		return nil
	})
}

// SetAtime sets the access time alone (utimensat with UTIME_OMIT for the mtime): a local
// attribute only, so nothing is owed to the bucket.
func (l *Layer) SetAtime(path string, atime time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.update(func(tx *bolt.Tx) error {
		r, err := visibleRec(tx, path)
		if err != nil {
			return err
		}
		set := func(_ string, r *record) error {
			r.Attr.Atime, r.Attr.Ctime = atime, l.now()
			return nil
		}
		if r.ID != 0 {
			return eachLinkTx(tx, r.ID, set)
		}
		set(path, r)
		return putRec(tx, path, r)
	})
	return perr("utimens", path, err)
}

// XattrMode is setxattr(2)'s flags: create only, replace only, or either (0).
type XattrMode int

const (
	XattrCreate  XattrMode = 1 // XATTR_CREATE: fail with ErrExists if the name is set
	XattrReplace XattrMode = 2 // XATTR_REPLACE: fail with ErrNoAttr if it is not
)

// SetXattr sets extended attribute name of path. It is kept with the other attributes and
// exported by the next upload (a metadata-only copy when the data did not change, Y7), so
// what the object's metadata can hold bounds it: ErrNoSpace past S3's 2 KiB.
func (l *Layer) SetXattr(path, name string, value []byte, mode XattrMode) error {
	return l.setattr("setxattr", path, func(a *Attr) error {
		_, had := a.Xattrs[name]
		switch {
		case mode == XattrCreate && had:
			return ErrExists
		case mode == XattrReplace && !had:
			return ErrNoAttr
		}
		x := make(map[string][]byte, len(a.Xattrs)+1)
		for k, v := range a.Xattrs {
			x[k] = v
		}
		x[name] = append([]byte{}, value...)
		a.Xattrs = x
		if !posixmeta.FitsMetadata(posixmeta.Attr{Kind: posixmeta.File, Mode: a.Mode, UID: a.UID, GID: a.GID,
			Mtime: a.Mtime, HasMtime: true, Rdev: a.Rdev, Xattrs: x}) {
			return ErrNoSpace
		}
		return nil
	})
}

// RemoveXattr removes extended attribute name of path (ErrNoAttr if it is not set).
func (l *Layer) RemoveXattr(path, name string) error {
	return l.setattr("removexattr", path, func(a *Attr) error {
		if _, had := a.Xattrs[name]; !had {
			return ErrNoAttr
		}
		x := make(map[string][]byte, len(a.Xattrs))
		for k, v := range a.Xattrs {
			if k != name {
				x[k] = v
			}
		}
		if len(x) == 0 {
			x = nil
		}
		a.Xattrs = x
		return nil
	})
}

func (l *Layer) setattr(op, path string, set func(*Attr) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	// An open file's lock is taken before bbolt's (the lock order); the record's id cannot
	// change meanwhile, since namespace changes hold l.mu.
	var f *openFile
	err := l.view(func(tx *bolt.Tx) error {
		r, err := visibleRec(tx, path)
		if err == nil && r.ID != 0 {
			f = l.files[r.ID]
		}
		return err
	})
	if err != nil {
		return perr(op, path, err)
	}
	if f != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		// The commit below takes the unsynced writes into the record and clears wrote, after
		// which a close does not sync again: their bytes must be on disk first (invariant 2).
		if f.wrote {
			if err := l.syncData(f); err != nil {
				return perr(op, path, err)
			}
		}
	}
	tookWrites := false
	err = l.update(func(tx *bolt.Tx) error {
		r, err := visibleRec(tx, path)
		if err != nil {
			return err
		}
		tookWrites = f != nil && f.wrote
		change := func(p string, r *record) error {
			if tookWrites {
				// Unsynced writes' mtime is committed now, so a later Sync cannot overwrite
				// an explicit utimens with it.
				r.Attr.Mtime, r.State.Size = f.mtime, f.size
			}
			if err := set(&r.Attr); err != nil {
				return err
			}
			r.Attr.Ctime = l.now()
			if p != "" { // the root is the prefix itself and is never uploaded (K8)
				r.State, _ = syncrule.Next(r.State, syncrule.LocalWrite{At: l.now(), MetadataOnly: true, Size: r.State.Size}, noParams)
			}
			return nil
		}
		if r.ID != 0 {
			// The attributes are the file's, so every name's record and object take them.
			return eachLinkTx(tx, r.ID, change)
		}
		if err := change(path, r); err != nil {
			return err
		}
		return putRec(tx, path, r)
	})
	if err == nil && tookWrites {
		f.wrote = false // the record has them now; only a refused change leaves them to the close
	}
	return perr(op, path, err)
}
