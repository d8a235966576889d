package local

import (
	"encoding/binary"
	"os"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// conflictTx carries out a conflict's outcome (or a remote change's import) for the record r
// at path, in tx, after the rule decided state s (C2, C4, C6; SYNC.md invariant 6):
//
//  1. MoveToLostFound: the local version becomes /<LostFoundDir>/<id>-<basename>, a
//     lost+found record with r's id, so its data file moves with it without being touched
//     (data files are named by id), and its original path (OrigPath: the xattr of C4); a name
//     of a linked file, whose other names keep the id and the data, gets a copy. The
//     id comes from the lost+found sequence in meta, so ids keep increasing across restarts.
//  2. ImportRemote: the path takes the bucket's version: a clean, metadata-only record with
//     the remote base (AttrPending: the object's attributes are read by the engine or the
//     importer), or no record at all for a remote delete.
//  3. The op whose failure reported the conflict is removed from the queue.
//
// All three are one transaction: a crash leaves the dirty local version at its path and the op
// queued (the replay meets the conflict again), or everything done. Data files to remove after
// the commit are returned (a clean file's stale data, invariant 6).
func (l *Layer) conflictTx(tx *bolt.Tx, path string, r *record, ev syncrule.Event, s syncrule.State,
	move *syncrule.MoveToLostFound, imp *syncrule.ImportRemote, res *Applied) ([]uint64, error) {
	if err := l.settleOpTx(tx, path, ev); err != nil {
		return nil, err
	}
	if r.Kind == KindDir {
		return nil, l.importDirTx(tx, path, r, s, imp, res)
	}
	var drop []uint64
	now := l.now()
	if err := l.delRec(tx, path, r); err != nil {
		return nil, err
	}
	// linked: the file keeps other names (Link), which keep its id and data; this name
	// leaves them, and what goes to lost+found is a copy.
	linked := r.ID != 0 && len(pathsOfID(tx, r.ID)) > 0
	switch {
	case move != nil && r.State.Exists:
		if err := l.ensureLostFoundTx(tx); err != nil {
			return nil, err
		}
		id, err := nextLostIDTx(tx)
		if err != nil {
			return nil, err
		}
		_, base := keymap.Split(path)
		lfPath := keymap.Join(syncrule.LostFoundDir(l.fsid), syncrule.LostFoundName(id, base))
		lf := &record{Kind: r.Kind, ID: r.ID, Attr: r.Attr, Target: r.Target, OrigPath: path}
		size := r.State.Size
		if r.Kind == KindFile && (!move.DataLocal || r.State.Data != syncrule.LocalData) {
			// Only attributes changed, over the base's bytes, which are not local and which
			// the bucket no longer serves (the store reads no old versions): keep what a
			// program did, the attributes, over an empty data file. Any file of the old id
			// is stale (no record owns data that is not local).
			if r.ID != 0 && !linked {
				drop = append(drop, r.ID)
			}
			if lf.ID, err = l.newDataID(tx); err != nil {
				return nil, err
			}
			if err := createEmpty(l.dataPath(lf.ID)); err != nil {
				return nil, err
			}
			size, res.NoBaseData = 0, true
		} else if linked {
			if lf.ID = 0; r.Kind == KindFile {
				if lf.ID, err = l.newDataID(tx); err != nil {
					return nil, err
				}
				// The copy is of the data file as it is, unsynced writes of an open handle
				// included, so its size is the copy's. It is taken inside the transaction,
				// under l.mu: a reflink where the disk has them, else a full copy.
				if size, err = l.copyData(r.ID, lf.ID); err != nil {
					return nil, err
				}
			}
		}
		lf.State = syncrule.NewLostFound(size, now)
		crashHook("conflict-mid")
		if err := putRec(tx, lfPath, lf); err != nil {
			return nil, err
		}
		res.LostFound = lfPath
	case linked:
	case r.ID != 0 && r.State.Data == syncrule.LocalData:
		// A clean file's data, or a dirty one's with nothing to keep: stale (C2).
		if l.files[r.ID] != nil {
			return nil, ErrBusy
		}
		drop = append(drop, r.ID)
	}
	if s.Absent() {
		return drop, nil // the bucket's absence wins (C4, C6)
	}
	n := &record{Kind: KindFile, Attr: Attr{Mode: l.opts.FileMode, UID: l.opts.UID, GID: l.opts.GID, Mtime: now},
		State: s, AttrPending: true}
	return drop, putRec(tx, path, n)
}

// importDirTx is the outcome for a directory. Its object is its marker (Y8): only attributes,
// no data to keep, so nothing goes to lost+found; the bucket's marker (or its absence) becomes
// the base and the directory stays, since what is under it is not the marker's to remove.
func (l *Layer) importDirTx(tx *bolt.Tx, path string, r *record, s syncrule.State, imp *syncrule.ImportRemote, res *Applied) error {
	st := syncrule.State{Exists: true, Data: syncrule.LocalData, Gen: s.Gen, CleanGen: s.Gen, ContentGen: s.ContentGen,
		LastUsed: s.LastUsed}
	if imp != nil {
		st.Base = imp.Version
	}
	r.State, r.AttrPending = st, !st.Base.IsZero()
	res.State = st
	return putRec(tx, path, r)
}

// settleOpTx removes the queued op whose failure ev reports, in the transaction that records
// the conflict's outcome: the op's result is that outcome, so a crash cannot leave one without
// the other.
func (l *Layer) settleOpTx(tx *bolt.Tx, path string, ev syncrule.Event) error {
	var gen uint64
	var kind OpKind
	switch ev := ev.(type) {
	case syncrule.UploadFailed:
		gen, kind = ev.Gen, OpUpload
	case syncrule.DeleteFailed:
		gen, kind = ev.Gen, OpDelete
	default:
		return nil
	}
	b := tx.Bucket(bQueue)
	var del [][]byte
	err := b.ForEach(func(k, v []byte) error {
		op, err := decodeOp(k, v)
		if err != nil {
			return err
		}
		if op.Path == path && op.Kind == kind && op.Gen == gen && op.ChainOf == 0 {
			del = append(del, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range del {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ensureLostFoundTx makes the lost+found directory if it does not exist yet. It is local only
// (C5): clean with no base and LostFound set, so it is never uploaded; Imported, so nothing is
// ever listed into it.
func (l *Layer) ensureLostFoundTx(tx *bolt.Tx) error {
	dir := syncrule.LostFoundDir(l.fsid)
	r, err := getRec(tx, dir)
	if err != nil || r != nil && r.visible() {
		return err
	}
	d := &record{Kind: KindDir, Attr: Attr{Mode: l.opts.DirMode, UID: l.opts.UID, GID: l.opts.GID, Mtime: l.now()},
		Imported: true}
	d.State.Exists, d.State.LostFound, d.State.Data = true, true, syncrule.LocalData
	return putRec(tx, dir, d)
}

// nextLostIDTx takes the next id of the lost+found sequence (C4: unique and increasing).
func nextLostIDTx(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(bMeta)
	var id uint64
	if v := meta.Get(kLostIDs); len(v) == 8 {
		id = binary.BigEndian.Uint64(v)
	}
	id++
	return id, meta.Put(kLostIDs, u64(id))
}

// dropData removes data files after the commit that stopped referring to them (invariant 6).
func (l *Layer) dropData(ids []uint64) {
	if len(ids) == 0 {
		return
	}
	crashHook("conflict-before-drop")
	for _, id := range ids {
		os.Remove(l.dataPath(id))
	}
}

// ApplyRemote records what a poll or an event notification saw at path's key (C2): ev is
// syncrule.RemoteChanged or syncrule.RemoteDeleted, and kind says whether the key was a file's
// object (KindFile; a listing cannot tell a symlink) or a directory (KindDir: its marker, or a
// common prefix, with a zero Version).
//
//   - No record: an object new to an imported, visible directory gets a clean metadata-only
//     record (as ImportListing would make it; the returned ImportRemote asks to fetch it if
//     small, Y1). Under a directory not imported yet nothing is recorded: its listing will be.
//   - A clean file: the bucket's version is imported and its stale data dropped (ErrBusy while
//     the data file is open, so the poller retries it later). A name of a linked file leaves
//     the link instead: the other names keep the data, open or not.
//   - A dirty file: the conflict rule (C4): the local version moves to lost+found and the
//     bucket's version (or absence) is imported, in one transaction (see conflictTx). A
//     tombstone meets C6: the local delete is dropped and the bucket's version reappears.
//   - A file with an operation in flight: the change is held by the rule until the op's result.
//   - Lost+found (C5), a record of the other kind, or a destination of a rename whose copy has
//     not run (the copy will write the key): nothing happens.
//
// The returned Applied says what was done: State, the rule's Actions (InvalidateKernelCache for
// the FUSE layer, ImportRemote.FetchData), and LostFound if a local version moved.
func (l *Layer) ApplyRemote(path string, kind Kind, ev syncrule.Event, p syncrule.Params) (Applied, error) {
	switch ev.(type) {
	case syncrule.RemoteChanged, syncrule.RemoteDeleted:
	default:
		return Applied{}, perr("apply-remote", path, ErrInvalid)
	}
	if path == "" || !keymap.ValidPath(path) || (kind != KindFile && kind != KindDir) {
		return Applied{}, perr("apply-remote", path, ErrInvalid)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var res Applied
	var drop []uint64
	err := l.update(func(tx *bolt.Tx) error {
		if l.inLostFound(path) {
			return nil // local only (C5)
		}
		r, err := getRec(tx, path)
		if err != nil {
			return err
		}
		if r == nil {
			return l.remoteNewTx(tx, path, kind, ev, p, &res)
		}
		res.State = r.State
		if r.Kind.isDir() != kind.isDir() || r.PendingCopy != 0 || r.State.LostFound {
			return nil
		}
		if r.Kind == KindDir {
			return l.remoteDirTx(tx, path, r, ev, &res)
		}
		res, drop, err = l.applyTx(tx, path, r, ev, p)
		return err
	})
	if err != nil {
		return Applied{}, perr("apply-remote", path, err)
	}
	l.dropData(drop)
	return res, nil
}

// remoteNewTx records an object (or directory) new to an imported directory.
func (l *Layer) remoteNewTx(tx *bolt.Tx, path string, kind Kind, ev syncrule.Event, p syncrule.Params, res *Applied) error {
	rc, ok := ev.(syncrule.RemoteChanged)
	if !ok || l.removedWhileObserved(path) {
		return nil
	}
	dir, _ := keymap.Split(path)
	d, err := getRec(tx, dir)
	if err != nil || d == nil || !d.visible() || d.Kind != KindDir || !d.Imported || d.State.LostFound {
		return err
	}
	now := l.now()
	if kind == KindDir {
		r := &record{Kind: KindDir, Attr: Attr{Mode: l.opts.DirMode, UID: l.opts.UID, GID: l.opts.GID, Mtime: now}}
		r.State.Exists, r.State.Base, r.AttrPending = true, rc.Version, !rc.Version.IsZero()
		res.State = r.State
		return putRec(tx, path, r)
	}
	if rc.Version.IsZero() || rc.Size < 0 {
		return ErrInvalid
	}
	st, acts := syncrule.Next(syncrule.State{}, rc, p)
	r := &record{Kind: KindFile, Attr: Attr{Mode: l.opts.FileMode, UID: l.opts.UID, GID: l.opts.GID, Mtime: now},
		State: st, AttrPending: true}
	res.State, res.Actions = st, acts
	return putRec(tx, path, r)
}

// remoteDirTx: a directory's marker changed or went away. Markers hold only attributes, so the
// bucket's becomes the base whether or not the directory's attributes changed here (C4 for a
// directory loses no data), and the directory itself stays.
func (l *Layer) remoteDirTx(tx *bolt.Tx, path string, r *record, ev syncrule.Event, res *Applied) error {
	var v syncrule.Version
	if rc, ok := ev.(syncrule.RemoteChanged); ok {
		v = rc.Version
	}
	s := r.State
	if s.InFlight != syncrule.OpNone || v.Same(s.Base) || !s.Exists {
		return nil
	}
	imp := syncrule.ImportRemote{Version: v}
	if err := l.importDirTx(tx, path, r, s, &imp, res); err != nil {
		return err
	}
	res.Actions = []syncrule.Action{imp, syncrule.InvalidateKernelCache{}}
	return nil
}
