package local

import (
	"os"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// Rename moves src to dst with POSIX semantics (a file replaces a file, a directory an empty
// directory). Locally it is one transaction: every descendant of a directory moves with it,
// and data files are not touched, since they are named by id. For each moved record whose
// object the bucket has, the same transaction queues a copy to the new key and a delete of the
// old (Y9), so a crash leaves either nothing moved and nothing queued, or everything moved and
// every copy owed.
//
// Tombstones under a renamed directory stay at their paths: their deletes are of the old keys.
func (l *Layer) Rename(src, dst string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var dropID uint64
	err := l.update(func(tx *bolt.Tx) error {
		if src == "" || dst == "" || !keymap.ValidPath(dst) {
			return ErrInvalid
		}
		if l.inLostFound(src) || l.inLostFound(dst) {
			return ErrPermitted // C5
		}
		r, err := visibleRec(tx, src)
		if err != nil {
			return err
		}
		if err := lookupDir(tx, dst); err != nil {
			return err
		}
		if src == dst {
			return nil
		}
		if keymap.Below(dst, src) {
			return ErrInvalid
		}
		if r.State.LostFound {
			return ErrPermitted // C5
		}
		d, err := getRec(tx, dst)
		if err != nil {
			return err
		}
		if d != nil && d.visible() {
			if d.ID != 0 && d.ID == r.ID {
				return nil // two names of one file: rename(2) does nothing
			}
			switch {
			case r.Kind == KindDir && d.Kind != KindDir:
				return ErrNotDir
			case r.Kind != KindDir && d.Kind == KindDir:
				return ErrIsDir
			case d.Kind == KindDir:
				if busy, err := hasChildren(tx, dst); err != nil || busy {
					if err == nil {
						err = ErrNotEmpty
					}
					return err
				}
			}
			if err := l.releaseTx(tx, dst, d); err != nil {
				return err
			}
			if err := l.delRec(tx, dst, d); err != nil {
				return err
			}
			if d.ID != 0 {
				if len(pathsOfID(tx, d.ID)) == 0 {
					dropID = d.ID
				} else if err := l.touchLinksTx(tx, d.ID); err != nil {
					return err // the replaced file keeps its other names
				}
			}
		}
		now := l.now()
		if err := touchParentTx(tx, src, now); err != nil {
			return err
		}
		if err := touchParentTx(tx, dst, now); err != nil {
			return err
		}
		r.Attr.Ctime = now // rename(2) changes the moved inode's ctime, under all its names
		if r.ID != 0 && r.Kind != KindDir {
			if err := l.touchLinksTx(tx, r.ID); err != nil {
				return err
			}
		}
		moved, err := subtree(tx, src, r)
		if err != nil {
			return err
		}
		for i, m := range moved {
			if i == len(moved)/2 {
				crashHook("rename-mid")
			}
			newPath := dst + m.path[len(src):]
			target := d
			if i > 0 {
				if target, err = getRec(tx, newPath); err != nil {
					return err
				}
			}
			if err := l.moveTx(tx, m.path, newPath, m.r, target); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return perr("rename", src, err)
	}
	if dropID != 0 {
		os.Remove(l.dataPath(dropID))
	}
	return nil
}

func (l *Layer) inLostFound(path string) bool { return syncrule.InLostFound(l.fsid, path) }

type pathRec struct {
	path string
	r    *record
}

// subtree is root and its visible descendants. The keys of the descendants of d are exactly
// those starting with d+NUL (children) or d+"/" (deeper), see nodeKey.
func subtree(tx *bolt.Tx, root string, r *record) ([]pathRec, error) {
	out := []pathRec{{root, r}}
	if r.Kind != KindDir {
		return out, nil
	}
	c := tx.Bucket(bNodes).Cursor()
	for _, p := range [][]byte{childPrefix(root), []byte(root + "/")} {
		for k, v := c.Seek(p); k != nil && hasPrefix(k, p); k, v = c.Next() {
			path := pathOfNodeKey(k)
			dr, err := decodeRec(path, v)
			if err != nil {
				return nil, err
			}
			if dr.visible() {
				out = append(out, pathRec{path, dr})
			}
		}
	}
	return out, nil
}

// moveTx moves one record from old to path, where d is what was at path (nil, a tombstone, or
// the replaced record, already removed). The new state continues d's, so its generations keep
// increasing and its base stays the precondition for overwriting the object at path.
//
// If the bucket has the source object, the destination goes through two generations: the
// first is what the queued copy will put at the new key (the source's base), the second the
// source's unsynced changes, if any. A copy that succeeds is reported with CopyDone (or
// MarkUploaded) for the first, which makes the file clean only if there were no such changes.
// A file whose data is not local is thus never owed a PUT of its bytes: they move by copy, and
// only a metadata-only generation can follow.
//
// If the source is itself the destination of a copy not recorded yet (PendingCopy: mv a b;
// mv b c before the copy a->b ran), that copy will make the object at the old key. The copy
// from the old key is then chained to it (Op.ChainOf): queued now, it learns its base from
// CopyDone of the first, and it runs after it, since both touch the old key. The bucket so
// ends with the object at the new key only, and nothing of the middle key is left.
func (l *Layer) moveTx(tx *bolt.Tx, old, path string, r *record, d *record) error {
	s := r.State
	chain, chainGen := r.PendingCopy, r.PendingCopyGen
	r.PendingCopy, r.PendingCopyGen = 0, 0
	if err := l.delRec(tx, old, r); err != nil {
		return err
	}
	var n syncrule.State
	if d != nil {
		if d.Kind.isDir() == r.Kind.isDir() {
			n = d.State
		} else if err := l.queueDeleteTx(tx, path, d); err != nil {
			return err
		}
	}
	at := l.now()
	n, _ = syncrule.Next(n, syncrule.LocalWrite{At: at, Size: s.Size}, noParams)
	if chain != 0 || !s.Base.IsZero() {
		// cleanGen is the source's generation the bucket will hold at the old key when the
		// copy runs: its base's, or the one the copy chained to will make.
		base, cleanGen := s.Base, s.CleanGen
		if chain != 0 {
			base, cleanGen = syncrule.Version{}, chainGen
		}
		copyGen := n.Gen
		if s.Gen > cleanGen {
			n, _ = syncrule.Next(n, syncrule.LocalWrite{At: at, MetadataOnly: s.ContentGen <= cleanGen, Size: s.Size}, noParams)
		}
		op, err := l.enqueueOpTx(tx, Op{Kind: OpRename, Path: path, Key: keyOf(l.opts.Prefix, r.Kind, old),
			DstKey: keyOf(l.opts.Prefix, r.Kind, path), Gen: copyGen, Base: base, ChainOf: chain})
		if err != nil {
			return err
		}
		r.PendingCopy, r.PendingCopyGen = op.ID, copyGen
	} else if s.InFlight != syncrule.OpNone {
		// The first upload of the source is running and will create the old key: owe its
		// delete. The engine must wait for that upload's result before running it.
		if err := l.enqueueTx(tx, Op{Kind: OpDelete, Path: old, Key: keyOf(l.opts.Prefix, r.Kind, old), Gen: s.InFlightGen}); err != nil {
			return err
		}
	}
	n.Data = s.Data
	if s.LastUsed.After(n.LastUsed) {
		n.LastUsed = s.LastUsed
	}
	r.State = n
	return putRec(tx, path, r)
}

// releaseTx is called for a record r leaving path for good (removed, or replaced by a rename)
// while a rename's copy to its key is queued and not recorded (PendingCopy): the object that
// copy makes is owed a delete, chained to the copy (Op.ChainOf), and r's base no longer names
// anything the bucket will hold.
func (l *Layer) releaseTx(tx *bolt.Tx, path string, r *record) error {
	if r.PendingCopy == 0 {
		return nil
	}
	chain := r.PendingCopy
	r.PendingCopy, r.PendingCopyGen = 0, 0
	r.State.Base = syncrule.Version{}
	return l.enqueueTx(tx, Op{Kind: OpDelete, Path: path, Key: keyOf(l.opts.Prefix, r.Kind, path), ChainOf: chain})
}
