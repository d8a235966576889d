package local

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// OpKind is a bucket operation the engine owes.
type OpKind uint8

const (
	// OpUpload: PUT the snapshot of generation Gen of Path at Key (or a CopyObject onto itself
	// if MetadataOnly), conditional on Base (If-Match) or on absence (IfNoneMatch), C3.
	OpUpload OpKind = iota + 1
	// OpDelete: DeleteObject Key if it is still Base (C6).
	OpDelete
	// OpRename: CopyObject Key (if it is still Base) to DstKey, then DeleteObject Key (Y9).
	// Both steps are idempotent or checked, so a replay after a crash resumes. If Gen is not
	// zero, a successful copy makes the bucket hold generation Gen of Path (the destination):
	// the engine reports it with MarkUploaded(Path, Gen, the copy's version).
	OpRename
)

func (k OpKind) String() string {
	if names := [...]string{OpUpload: "upload", OpDelete: "delete", OpRename: "rename"}; int(k) < len(names) && names[k] != "" {
		return names[k]
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one queued bucket operation. IDs increase in the order ops were queued; the engine
// must run the ops of one key in that order (a rename's delete before a new upload there).
type Op struct {
	ID           uint64
	Kind         OpKind
	Path         string // the path the op is for (the destination of a rename)
	Key          string // the object acted on (the source of a rename)
	DstKey       string // OpRename only
	Gen          uint64
	Base         syncrule.Version
	IfNoneMatch  bool
	MetadataOnly bool
	// ChainOf, if not zero, is the id of an earlier OpRename whose copy puts the object at Key:
	// this op was queued when the record that copy was for moved on (renamed again, removed,
	// replaced) before the copy's result was recorded. Base is then zero when queued and is
	// filled in by CopyDone with the version the copy made; if it is still zero when the op
	// runs, that copy made nothing at Key, and there is nothing of ours to move or delete. The
	// engine must read the op again (Layer.Op) before it runs it.
	ChainOf uint64 `json:",omitempty"`
	Queued  time.Time
}

func keyOf(prefix string, k Kind, path string) string {
	if k == KindDir {
		return keymap.DirKey(prefix, path)
	}
	return keymap.FileKey(prefix, path)
}

// enqueueTx writes op in tx, so it is durable exactly when the state change that owes it is
// (invariant 5).
func (l *Layer) enqueueTx(tx *bolt.Tx, op Op) error {
	_, err := l.enqueueOpTx(tx, op)
	return err
}

func (l *Layer) enqueueOpTx(tx *bolt.Tx, op Op) (Op, error) {
	b := tx.Bucket(bQueue)
	id, err := b.NextSequence()
	if err != nil {
		return op, err
	}
	op.ID, op.Queued = id, l.now()
	v, err := json.Marshal(op)
	if err != nil {
		return op, err
	}
	return op, b.Put(u64(id), v)
}

// queueDeleteTx owes the delete of a tombstone that is being replaced by a record of the
// other class (a file deleted, then a directory made at its path).
func (l *Layer) queueDeleteTx(tx *bolt.Tx, path string, old *record) error {
	if old.State.Base.IsZero() && old.State.InFlight == syncrule.OpNone {
		return nil
	}
	return l.enqueueTx(tx, Op{Kind: OpDelete, Path: path, Key: keyOf(l.opts.Prefix, old.Kind, path),
		Base: old.State.Base, Gen: old.State.Gen})
}

// decodeOp decodes the queue entry k: v.
func decodeOp(k, v []byte) (Op, error) {
	var op Op
	if err := json.Unmarshal(v, &op); err != nil {
		return Op{}, fmt.Errorf("%w: queue entry %d: %v", ErrCorrupt, binary.BigEndian.Uint64(k), err)
	}
	return op, nil
}

// Pending lists the queued operations in queue order.
func (l *Layer) Pending() ([]Op, error) {
	var ops []Op
	err := l.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bQueue).ForEach(func(k, v []byte) error {
			op, err := decodeOp(k, v)
			ops = append(ops, op)
			return err
		})
	})
	return ops, err
}

// Done removes a finished operation from the queue. Removing an op twice is not an error
// (the engine may report a replayed op again). A rename's destination stops waiting for the
// copy's result (PendingCopy) in the same transaction: whatever the copy did is recorded by
// now (CopyDone), or it made nothing.
func (l *Layer) Done(id uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bQueue)
		if v := b.Get(u64(id)); v != nil {
			var op Op
			if err := json.Unmarshal(v, &op); err == nil && op.Kind == OpRename {
				r, err := getRec(tx, op.Path)
				if err != nil {
					return err
				}
				if r != nil && r.PendingCopy == id {
					r.PendingCopy, r.PendingCopyGen = 0, 0
					if err := putRec(tx, op.Path, r); err != nil {
						return err
					}
				}
			}
		}
		return b.Delete(u64(id))
	})
}

// Op returns the queued op id as it is now, with ok=false if it is not queued (any more). An
// op with ChainOf set is completed by CopyDone of the op it is chained to, so the engine reads
// it again before running it.
func (l *Layer) Op(id uint64) (op Op, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	err = l.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bQueue).Get(u64(id))
		if v == nil {
			return nil
		}
		ok = true
		var err error
		op, err = decodeOp(u64(id), v)
		return err
	})
	return op, ok, err
}

// Dirty lists every record with changes the bucket lacks, tombstones included, in path order.
func (l *Layer) Dirty() ([]Info, error) {
	var out []Info
	err := l.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bNodes).ForEach(func(k, v []byte) error {
			path := pathOfNodeKey(k)
			r, err := decodeRec(path, v)
			if err == nil && r.State.Dirty() {
				out = append(out, r.info(path))
			}
			return err
		})
	})
	sortInfos(out)
	return out, err
}

// MarkUploaded records that the bucket now holds generation gen of path as base (C1). In the
// same transaction the file becomes clean, but only if gen is still its current generation:
// a change after the snapshot leaves it dirty, with the new base as the next precondition
// (invariant 4). If the engine started the upload through Apply, the rule's UploadSucceeded
// decides. It reports whether the file is now clean.
func (l *Layer) MarkUploaded(path string, gen uint64, base syncrule.Version) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if base.IsZero() {
		return false, perr("mark-uploaded", path, ErrInvalid)
	}
	clean := false
	err := l.update(func(tx *bolt.Tx) (err error) {
		clean, err = markUploadedTx(tx, path, gen, base)
		return err
	})
	return clean, perr("mark-uploaded", path, err)
}

func markUploadedTx(tx *bolt.Tx, path string, gen uint64, base syncrule.Version) (bool, error) {
	r, err := getRec(tx, path)
	if err != nil || r == nil || !r.State.Exists {
		if err == nil {
			err = ErrNotFound
		}
		return false, err
	}
	s := r.State
	switch {
	case s.InFlight == syncrule.OpUpload && s.InFlightGen == gen:
		s, _ = syncrule.Next(s, syncrule.UploadSucceeded{Gen: gen, Version: base}, noParams)
	case s.InFlight != syncrule.OpNone || gen <= s.CleanGen || gen > s.Gen:
		// Stale: an older snapshot than the bucket's, or an op the rule does not expect.
		return !s.Dirty(), nil
	default:
		s.Base, s.CleanGen = base, gen
		if !s.Dirty() {
			s.DirtySince = time.Time{}
		}
	}
	if r.PendingCopy != 0 && gen >= r.PendingCopyGen {
		r.PendingCopy, r.PendingCopyGen = 0, 0
	}
	r.State = s
	return !s.Dirty(), putRec(tx, path, r)
}

// CopyDone records that the copy of OpRename op succeeded and made version v at op.DstKey. If
// the record at op.Path is still the one the copy is for, that is MarkUploaded(op.Path,
// op.Gen, v). If the record moved on before (renamed again, removed or replaced: it queued an
// op chained to this one, see Op.ChainOf), v is the base of those chained ops instead, filled
// in in the same transaction, so that they move or delete exactly what this copy made. It
// reports whether the destination is now clean (false if it moved on).
func (l *Layer) CopyDone(op Op, v syncrule.Version) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v.IsZero() || op.Kind != OpRename {
		return false, perr("copy-done", op.Path, ErrInvalid)
	}
	clean := false
	err := l.update(func(tx *bolt.Tx) error {
		r, err := getRec(tx, op.Path)
		if err != nil {
			return err
		}
		if r != nil && r.PendingCopy == op.ID {
			clean, err = markUploadedTx(tx, op.Path, op.Gen, v)
			return err
		}
		b := tx.Bucket(bQueue)
		chained := false
		type upd struct {
			k []byte
			v []byte
		}
		var ups []upd
		err = b.ForEach(func(k, val []byte) error {
			var o Op
			if err := json.Unmarshal(val, &o); err != nil {
				return fmt.Errorf("%w: queue entry %d: %v", ErrCorrupt, binary.BigEndian.Uint64(k), err)
			}
			if o.ChainOf != op.ID {
				return nil
			}
			chained = true
			if !o.Base.IsZero() {
				return nil
			}
			o.Base = v
			nv, err := json.Marshal(o)
			if err != nil {
				return err
			}
			ups = append(ups, upd{append([]byte(nil), k...), nv})
			return nil
		})
		if err != nil {
			return err
		}
		for _, u := range ups {
			if err := b.Put(u.k, u.v); err != nil {
				return err
			}
		}
		if !chained && r != nil && r.PendingCopy == 0 {
			// A rename queued before records named their copy (PendingCopy): the generation
			// check of MarkUploaded decides, as it did then.
			clean, err = markUploadedTx(tx, op.Path, op.Gen, v)
			if errors.Is(err, ErrNotFound) {
				err = nil
			}
		}
		return err
	})
	return clean, perr("copy-done", op.Path, err)
}

// Applied is the result of Apply and ApplyRemote.
type Applied struct {
	State   syncrule.State
	Actions []syncrule.Action
	Ops     []Op // the queued operations for StartUpload and StartDelete actions
	// LostFound is the path in lost+found the local version was moved to (MoveToLostFound,
	// C4), or "" if nothing moved.
	LostFound string
	// NoBaseData: the local version moved to LostFound changed only attributes over bytes that
	// were not local (syncrule.MoveToLostFound.DataLocal false). The base's bytes cannot be read
	// back from the bucket by version, so the lost+found file keeps the attributes and is empty.
	NoBaseData bool
}

// Apply runs syncrule.Next for path and commits the new state together with the bucket
// operations it starts (invariant 5), before returning them to the engine. A conflict's
// outcome (MoveToLostFound, ImportRemote: C4, C6) is carried out in the same transaction, see
// conflictTx. Expiry is not accepted here (DropData): use Expire.
func (l *Layer) Apply(path string, ev syncrule.Event, p syncrule.Params) (Applied, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var res Applied
	var drop []uint64
	err := l.update(func(tx *bolt.Tx) error {
		r, err := getRec(tx, path)
		if err != nil {
			return err
		}
		if r == nil {
			return ErrNotFound
		}
		switch ev.(type) {
		case syncrule.Tick, syncrule.Flush:
			if r.PendingCopy != 0 {
				// A rename's copy will put the object at the key: starting an upload now
				// would race it, with a precondition that is not what the bucket will hold.
				res = Applied{State: r.State}
				return nil
			}
		}
		res, drop, err = l.applyTx(tx, path, r, ev, p)
		return err
	})
	if err != nil {
		return Applied{}, perr("apply", path, err)
	}
	l.dropData(drop)
	return res, nil
}

// applyTx runs the rule for the record r at path and carries out its actions in tx. It
// returns the data files to remove once tx is committed (invariant 6).
func (l *Layer) applyTx(tx *bolt.Tx, path string, r *record, ev syncrule.Event, p syncrule.Params) (Applied, []uint64, error) {
	s, acts := syncrule.Next(r.State, ev, p)
	var ops []Op
	var move *syncrule.MoveToLostFound
	var imp *syncrule.ImportRemote
	for _, a := range acts {
		switch a := a.(type) {
		case syncrule.StartUpload:
			ops = append(ops, Op{Kind: OpUpload, Path: path, Key: keyOf(l.opts.Prefix, r.Kind, path), Gen: a.Gen,
				Base: a.Base, IfNoneMatch: a.IfNoneMatch != "", MetadataOnly: a.MetadataOnly})
		case syncrule.StartDelete:
			ops = append(ops, Op{Kind: OpDelete, Path: path, Key: keyOf(l.opts.Prefix, r.Kind, path), Gen: a.Gen, Base: a.Base})
		case syncrule.MoveToLostFound:
			move = &a
		case syncrule.ImportRemote:
			imp = &a
		case syncrule.CheckRemote, syncrule.InvalidateKernelCache:
		default:
			return Applied{}, nil, fmt.Errorf("%w: action %T is not supported by Apply", ErrInvalid, a)
		}
	}
	for i := range ops {
		var err error
		if ops[i], err = l.enqueueOpTx(tx, ops[i]); err != nil {
			return Applied{}, nil, err
		}
	}
	res := Applied{State: s, Actions: acts, Ops: ops}
	if move != nil || imp != nil {
		drop, err := l.conflictTx(tx, path, r, ev, s, move, imp, &res)
		return res, drop, err
	}
	r.State = s
	if s.Absent() {
		return res, nil, l.delRec(tx, path, r)
	}
	return res, nil, putRec(tx, path, r)
}

// pageSize is how many records one short read transaction of DirtyPage or PendingPage visits
// at most: a reader of a long list (`mount-s3 status --all`) never holds one transaction
// open for long, which would hold back a writer that grows the file.
const pageSize = 4096

// DirtyPage lists up to n (at most pageSize) records with changes the bucket lacks, in the
// store's order, starting at the cursor from (nil: the start), and returns the cursor of the
// next page, nil when the listing is complete.
func (l *Layer) DirtyPage(from []byte, n int) (out []Info, next []byte, err error) {
	n = min(max(n, 1), pageSize)
	err = l.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bNodes).Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		for visited := 0; k != nil; k, v = c.Next() {
			if visited == pageSize || len(out) == n {
				next = append([]byte(nil), k...) // bolt's keys are valid only inside the transaction
				return nil
			}
			visited++
			path := pathOfNodeKey(k)
			r, err := decodeRec(path, v)
			if err != nil {
				return err
			}
			if r.State.Dirty() {
				out = append(out, r.info(path))
			}
		}
		return nil
	})
	return out, next, err
}

// PendingPage lists up to n (at most pageSize) queued operations with an id above after, in
// queue order.
func (l *Layer) PendingPage(after uint64, n int) ([]Op, error) {
	n = min(max(n, 1), pageSize)
	var ops []Op
	err := l.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bQueue).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(ops) < n; k, v = c.Next() {
			op, err := decodeOp(k, v)
			if err != nil {
				return err
			}
			ops = append(ops, op)
		}
		return nil
	})
	return ops, err
}
