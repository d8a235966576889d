package local

import (
	"errors"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// Remote is one entry of a directory's bucket listing, as ImportListing takes it: a file is an
// object (Version, Size and Mtime from the listing), a directory a common prefix (only Name
// and Kind are used). A listing cannot tell a symlink from a file; SetRemoteAttr does later.
type Remote struct {
	Name    string
	Kind    Kind // KindFile or KindDir
	Version syncrule.Version
	Size    int64
	Mtime   time.Time
}

// ImportListing records what the bucket listing of directory dir showed (Y1), in one
// transaction, and marks dir imported in the same one, so that a crash leaves either no
// record of the listing or all of it. It is ImportDir with no marker.
func (l *Layer) ImportListing(dir string, entries []Remote) error {
	return l.ImportDir(dir, syncrule.Version{}, entries)
}

// ImportDir records the listing of directory dir (Y1), in one transaction, and marks dir
// imported in the same one, so that a crash leaves either no record of the listing or all of
// it.
//
// Only names with no record at all are added: a file as a clean record with no local data
// (syncrule.Next of RemoteChanged from the absent state) and default attributes (Options:
// UID, GID, FileMode; the listing's Last-Modified as mtime) marked AttrPending until
// SetRemoteAttr; a directory as a clean, not yet imported directory with a zero base and
// DirMode (its parent's listing shows it as a common prefix, which does not tell whether it
// has a marker). What a listing says about a name that already has a record (a changed ETag
// of a clean file, an object at a tombstone, a kind that differs) is not acted on here: that
// is a remote change, for the rules of C2-C6 through the engine.
//
// marker is the version of dir's own marker object (Y8, K2) if the listing of dir showed one
// (the key dir+"/" itself), else zero. It becomes dir's base if dir has none and nothing is in
// flight for it, so that rmdir and rename of dir delete the marker (C6) and an attribute
// change is a conditional copy onto it rather than a create that conflicts with it. A clean
// dir is then marked AttrPending: the marker's metadata (s3fs-style mode, owner, mtime) is
// read by a HEAD, SetRemoteAttr. The root has no marker (K8): marker is ignored for it.
//
// The lost+found name of this file system is never imported (C5: it is local only).
func (l *Layer) ImportDir(dir string, marker syncrule.Version, entries []Remote) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	err := l.update(func(tx *bolt.Tx) error {
		d, err := visibleRec(tx, dir)
		if err != nil {
			return err
		}
		if d.Kind != KindDir {
			return ErrNotDir
		}
		for _, e := range entries {
			if !keymap.ValidName(e.Name) {
				return ErrInvalid
			}
			if dir == "" && e.Name == syncrule.LostFoundDir(l.fsid) {
				continue
			}
			path := keymap.Join(dir, e.Name)
			old, err := getRec(tx, path)
			if err != nil {
				return err
			}
			if old != nil || l.removedWhileObserved(path) {
				continue
			}
			mtime := e.Mtime
			if mtime.IsZero() {
				mtime = now
			}
			var r *record
			switch e.Kind {
			case KindFile:
				if e.Version.IsZero() || e.Size < 0 {
					return ErrInvalid
				}
				st, _ := syncrule.Next(syncrule.State{}, syncrule.RemoteChanged{Version: e.Version, Size: e.Size}, noParams)
				r = &record{Kind: KindFile, Attr: Attr{Mode: l.opts.FileMode, UID: l.opts.UID, GID: l.opts.GID, Mtime: mtime},
					State: st, AttrPending: true}
			case KindDir:
				r = &record{Kind: KindDir, Attr: Attr{Mode: l.opts.DirMode, UID: l.opts.UID, GID: l.opts.GID, Mtime: mtime}}
				r.State.Exists = true
			default:
				return ErrInvalid
			}
			if err := putRec(tx, path, r); err != nil {
				return err
			}
		}
		changed := !d.Imported
		d.Imported = true
		if dir != "" && !marker.IsZero() && d.State.Base.IsZero() && d.State.InFlight == syncrule.OpNone &&
			!d.State.LostFound && d.PendingCopy == 0 {
			d.State.Base = marker
			if !d.State.Dirty() {
				d.AttrPending = true
			}
			changed = true
		}
		if changed {
			return putRec(tx, dir, d)
		}
		return nil
	})
	return perr("import", dir, err)
}

// AdoptMarker records v as the base of directory path when the engine's create of its marker
// (If-None-Match) found one already there: a directory seen only as a common prefix of its
// parent's listing may have a marker nobody listed yet. A marker carries no data, only
// attributes, so this is not a conflict: the next upload replaces it conditionally on v. It is
// a no-op unless path is a visible directory with no base (and no rename's copy pending).
func (l *Layer) AdoptMarker(path string, v syncrule.Version) error {
	if v.IsZero() || path == "" {
		return perr("adopt-marker", path, ErrInvalid)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.update(func(tx *bolt.Tx) error {
		r, err := getRec(tx, path)
		if err != nil || r == nil || !r.visible() || r.Kind != KindDir || !r.State.Base.IsZero() ||
			r.State.LostFound || r.PendingCopy != 0 {
			return err
		}
		r.State.Base = v
		return putRec(tx, path, r)
	})
	return perr("adopt-marker", path, err)
}

// Imported reports whether directory dir's listing has been imported (ImportListing).
func (l *Layer) Imported(dir string) (bool, error) {
	var imported bool
	// Pending creates (pending.go) change no directory's Imported: a create waits for none.
	err := l.viewCommitted(func(tx *bolt.Tx) error {
		r, err := visibleRec(tx, dir)
		if err != nil {
			return err
		}
		if r.Kind != KindDir {
			return ErrNotDir
		}
		imported = r.Imported
		return nil
	})
	return imported, perr("imported", dir, err)
}

// AttrPending lists the files whose attributes are still the defaults ImportListing gave
// them, in path order. The importer's reads of object metadata are not durable work: after a
// restart this is what is left to do.
func (l *Layer) AttrPending() ([]Info, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Info
	err := l.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bNodes).ForEach(func(k, v []byte) error {
			path := pathOfNodeKey(k)
			r, err := decodeRec(path, v)
			if err == nil && r.AttrPending && r.visible() {
				out = append(out, r.info(path))
			}
			return err
		})
	})
	sortInfos(out)
	return out, err
}

// SetRemoteAttr records the attributes that version v of the object at path carries in its
// metadata (Y3), read by a HEAD or GET after the file was imported; kind KindDir for a
// directory whose marker ImportDir recorded. kind is KindSymlink or a special kind when the
// metadata's mode says so (KindOfMeta): the record becomes a symlink to target (the object's
// body) or that special file, and any local data file is dropped, since the record holds
// all of it (a name of a linked file leaves the link and the others keep the data).
//
// It never makes the file dirty: these are the bucket's attributes, not a change. A result
// that is no longer about the record is ignored (nil): the record is gone, dirty, busy with
// an upload or delete, or its base is not v (a remote change came in between).
func (l *Layer) SetRemoteAttr(path string, v syncrule.Version, a Attr, kind Kind, target string) error {
	if kind != KindFile && kind != KindSymlink && kind != KindDir && !kind.Special() || v.IsZero() {
		return perr("set-remote-attr", path, ErrInvalid)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var drop uint64
	err := l.update(func(tx *bolt.Tx) error {
		var err error
		drop, err = l.setRemoteAttrTx(tx, path, v, a, kind, target)
		return err
	})
	if err != nil {
		return perr("set-remote-attr", path, err)
	}
	if drop != 0 {
		// After the commit (invariant 6); clean data, which the bucket has anyway.
		os.Remove(l.dataPath(drop))
	}
	return nil
}

// RemoteAttr is one file's or directory's attributes for SetRemoteAttrs.
type RemoteAttr struct {
	Path    string
	Version syncrule.Version
	Attr    Attr
	Kind    Kind // KindFile, KindDir or a special kind (not KindSymlink: that needs the body)
}

// SetRemoteAttrs is SetRemoteAttr for many files and directories in one transaction: one
// commit for the attributes that lookups read ahead of the background import, instead of one
// each queued behind the import's own. An entry SetRemoteAttr would refuse is skipped.
func (l *Layer) SetRemoteAttrs(batch []RemoteAttr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.update(func(tx *bolt.Tx) error {
		for _, u := range batch {
			if u.Kind != KindFile && u.Kind != KindDir && !u.Kind.Special() || u.Version.IsZero() {
				continue
			}
			if _, err := l.setRemoteAttrTx(tx, u.Path, u.Version, u.Attr, u.Kind, ""); err != nil && !errors.Is(err, ErrInvalid) {
				return err
			}
		}
		return nil
	})
	return perr("set-remote-attrs", "", err)
}

// setRemoteAttrTx is SetRemoteAttr's change of one record in tx; it returns the data file to
// remove after the commit, if any.
// LOCKS_REQUIRED(l.mu)
func (l *Layer) setRemoteAttrTx(tx *bolt.Tx, path string, v syncrule.Version, a Attr, kind Kind, target string) (drop uint64, err error) {
	a.Mode &= 0o7777
	r, err := getRec(tx, path)
	if err != nil {
		return 0, err
	}
	if r != nil && r.visible() && (kind == KindDir) != (r.Kind == KindDir) && r.State.Base.Same(v) {
		// One version cannot be both a marker and a file's object.
		return 0, ErrInvalid
	}
	if r == nil || !r.visible() || (kind == KindDir) != (r.Kind == KindDir) || r.State.Dirty() ||
		r.State.InFlight != syncrule.OpNone || r.State.LostFound || !r.State.Base.Same(v) || r.PendingCopy != 0 {
		return 0, nil
	}
	switch {
	case kind != r.Kind && r.Kind != KindFile:
		// The same version cannot be two kinds; a caller mixing two reads of it is wrong.
		return 0, ErrInvalid
	case kind == KindSymlink || kind.Special():
		if kind == KindSymlink && int64(len(target)) != r.State.Size || kind.Special() && (r.State.Size != 0 || target != "") {
			return 0, ErrInvalid // not the body of version v
		}
		switch {
		case r.ID == 0 || r.Kind != KindFile:
			// A linked symlink or special file keeps its id: it names no data file.
		case shared(tx, r.ID, path):
			// One name of a linked file: it leaves the others, which keep the data.
			if err := dropIDPath(tx, r.ID, path); err != nil {
				return 0, err
			}
			r.ID = 0
		case l.files[r.ID] != nil:
			return 0, ErrBusy
		default:
			if err := dropIDPath(tx, r.ID, path); err != nil {
				return 0, err
			}
			drop, r.ID = r.ID, 0
		}
		// As a symlink or special file made locally: the record holds all of it.
		r.Kind, r.Target = kind, target
		r.State.Data = syncrule.LocalData
	}
	r.Attr, r.AttrPending = a, false
	return drop, putRec(tx, path, r)
}

// touchResolution: Y10 measures disuse in days, so a read within this long of the recorded
// last use is not worth a committed (fsync'd) transaction on every read.
const touchResolution = time.Minute

// Touch records a read of path's data at at (Y10: syncrule.Read), which postpones expiry. It
// writes nothing unless the file has local data and the recorded last use is older than at
// by more than a minute; a file whose data is not local gets its last use when it is fetched.
func (l *Layer) Touch(path string, at time.Time) error {
	need, err := l.touchNeeded(path, at)
	if err != nil || !need {
		return perr("touch", path, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return perr("touch", path, l.update(func(tx *bolt.Tx) error { return touchTx(tx, path, at) }))
}

// TouchLater is Touch for the read path: the read is recorded in the background, with the
// others that came meanwhile, in one transaction. An open of a file then never waits for a
// commit's fsync, nor holds mu across one (a loader re-reading its dataset every epoch made
// one commit per file). A crash may lose reads recorded this way; the data then expires
// from an earlier last use, which only costs a fetch again (Y10). ExpireUnused and Close
// record them first.
func (l *Layer) TouchLater(path string, at time.Time) error {
	need, err := l.touchNeeded(path, at)
	if err != nil || !need {
		return perr("touch", path, err)
	}
	t := &l.touches
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending == nil {
		t.pending = map[string]time.Time{}
	}
	if at.After(t.pending[path]) {
		t.pending[path] = at
	}
	if !t.flushing {
		t.flushing = true
		go l.flushTouches()
	}
	return nil
}

// touches are the reads TouchLater has not recorded yet.
type touches struct {
	mu       sync.Mutex
	pending  map[string]time.Time // GUARDED_BY(mu): the latest read of each path
	flushing bool                 // GUARDED_BY(mu): flushTouches is running
}

// touchNeeded reports whether a read of path at at would change its record (Touch).
func (l *Layer) touchNeeded(path string, at time.Time) (bool, error) {
	var need bool
	err := l.viewOf(path, func(tx *bolt.Tx) error {
		r, err := getRec(tx, path)
		need = touchStale(r, at)
		return err
	})
	return need, err
}

func touchStale(r *record, at time.Time) bool {
	return r != nil && r.visible() && r.Kind == KindFile && r.State.Data == syncrule.LocalData &&
		at.Sub(r.State.LastUsed) > touchResolution
}

// touchTx records a read of path at at, if it still changes the record.
func touchTx(tx *bolt.Tx, path string, at time.Time) error {
	r, err := getRec(tx, path)
	if err != nil || !touchStale(r, at) {
		return err
	}
	r.State, _ = syncrule.Next(r.State, syncrule.Read{At: at}, noParams)
	return putRec(tx, path, r)
}

// flushTouches records the pending reads until none are left.
// LOCKS_EXCLUDED(l.mu, l.touches.mu)
func (l *Layer) flushTouches() {
	for {
		l.mu.Lock()
		l.flushTouchesLocked()
		l.mu.Unlock()
		t := &l.touches
		t.mu.Lock()
		if len(t.pending) == 0 {
			t.flushing = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
}

// flushTouchesLocked records the pending reads in one transaction. A failure drops them: a
// read's record only postpones expiry.
// REQUIRES: l.mu held. LOCKS_EXCLUDED(l.touches.mu)
func (l *Layer) flushTouchesLocked() {
	t := &l.touches
	t.mu.Lock()
	batch := t.pending
	t.pending = nil
	t.mu.Unlock()
	if len(batch) == 0 || l.closed.Load() {
		return
	}
	_ = l.update(func(tx *bolt.Tx) error {
		for path, at := range batch {
			if err := touchTx(tx, path, at); err != nil {
				return err
			}
		}
		return nil
	})
}
