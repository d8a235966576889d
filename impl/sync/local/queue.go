package local

import (
	"encoding/binary"
	"encoding/json"
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
	switch k {
	case OpUpload:
		return "upload"
	case OpDelete:
		return "delete"
	case OpRename:
		return "rename"
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
	Queued       time.Time
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

// Pending lists the queued operations in queue order.
func (l *Layer) Pending() ([]Op, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ops []Op
	err := l.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bQueue).ForEach(func(k, v []byte) error {
			var op Op
			if err := json.Unmarshal(v, &op); err != nil {
				return fmt.Errorf("%w: queue entry %d: %v", ErrCorrupt, binary.BigEndian.Uint64(k), err)
			}
			ops = append(ops, op)
			return nil
		})
	})
	return ops, err
}

// Done removes a finished operation from the queue. Removing an op twice is not an error
// (the engine may report a replayed op again).
func (l *Layer) Done(id uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.update(func(tx *bolt.Tx) error { return tx.Bucket(bQueue).Delete(u64(id)) })
}

// Dirty lists every record with changes the bucket lacks, tombstones included, in path order.
func (l *Layer) Dirty() ([]Info, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
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
	err := l.update(func(tx *bolt.Tx) error {
		r, err := getRec(tx, path)
		if err != nil || r == nil || !r.State.Exists {
			if err == nil {
				err = ErrNotFound
			}
			return err
		}
		s := r.State
		switch {
		case s.InFlight == syncrule.OpUpload && s.InFlightGen == gen:
			s, _ = syncrule.Next(s, syncrule.UploadSucceeded{Gen: gen, Version: base}, noParams)
		case s.InFlight != syncrule.OpNone || gen <= s.CleanGen || gen > s.Gen:
			// Stale: an older snapshot than the bucket's, or an op the rule does not expect.
			clean = !s.Dirty()
			return nil
		default:
			s.Base, s.CleanGen = base, gen
			if !s.Dirty() {
				s.DirtySince = time.Time{}
			}
		}
		r.State, clean = s, !s.Dirty()
		return putRec(tx, path, r)
	})
	return clean, perr("mark-uploaded", path, err)
}

// Applied is the result of Apply.
type Applied struct {
	State   syncrule.State
	Actions []syncrule.Action
	Ops     []Op // the queued operations for StartUpload and StartDelete actions
}

// Apply runs syncrule.Next for path and commits the new state together with the bucket
// operations it starts (invariant 5), before returning them to the engine. Events that move
// or drop local data (conflicts, remote changes, expiry) are not accepted here: they need the
// layer to move data files (lost+found, C4) in the same transaction, which is not built yet;
// use Expire for expiry.
func (l *Layer) Apply(path string, ev syncrule.Event, p syncrule.Params) (Applied, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var res Applied
	err := l.update(func(tx *bolt.Tx) error {
		r, err := getRec(tx, path)
		if err != nil {
			return err
		}
		if r == nil {
			return ErrNotFound
		}
		s, acts := syncrule.Next(r.State, ev, p)
		var ops []Op
		for _, a := range acts {
			switch a := a.(type) {
			case syncrule.StartUpload:
				ops = append(ops, Op{Kind: OpUpload, Path: path, Key: keyOf(l.opts.Prefix, r.Kind, path), Gen: a.Gen,
					Base: a.Base, IfNoneMatch: a.IfNoneMatch != "", MetadataOnly: a.MetadataOnly})
			case syncrule.StartDelete:
				ops = append(ops, Op{Kind: OpDelete, Path: path, Key: keyOf(l.opts.Prefix, r.Kind, path), Gen: a.Gen, Base: a.Base})
			case syncrule.CheckRemote, syncrule.InvalidateKernelCache:
			default:
				return fmt.Errorf("%w: action %T is not supported by the local layer yet", ErrInvalid, a)
			}
		}
		for i := range ops {
			if ops[i], err = l.enqueueOpTx(tx, ops[i]); err != nil {
				return err
			}
		}
		res = Applied{State: s, Actions: acts, Ops: ops}
		r.State = s
		if s.Absent() {
			return delRec(tx, path, r)
		}
		return putRec(tx, path, r)
	})
	return res, perr("apply", path, err)
}
