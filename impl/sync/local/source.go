package local

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// Source is where the bucket holds the bytes of a file whose data is not local, read in one
// transaction with the file's size, so that a read never pairs one version's bytes with
// another's size.
type Source struct {
	Key     string
	Version syncrule.Version
	Size    int64
}

// RemoteSource says where the bucket holds the bytes of the file at path, for a read or a
// fetch of a file whose data is not local: its own key and base, or, while a rename's copy to
// it has not run (PendingCopy), the key the copy reads from, following chained renames back to
// the object that exists (mv a b; mv b c before any copy: the bytes are still at a).
func (l *Layer) RemoteSource(path string) (Source, error) {
	var src Source
	err := l.viewOf(path, func(tx *bolt.Tx) error {
		r, err := visibleRec(tx, path)
		if err != nil {
			return err
		}
		src = Source{Key: keyOf(l.opts.Prefix, r.Kind, path), Version: r.State.Base, Size: r.State.Size}
		next := r.PendingCopy
		for seen := 0; next != 0 && seen < 64; seen++ {
			raw := tx.Bucket(bQueue).Get(u64(next))
			if raw == nil {
				return nil // the copy ran: the record's own key and base are right
			}
			var op Op
			if err := json.Unmarshal(raw, &op); err != nil {
				return fmt.Errorf("%w: queue entry %d: %v", ErrCorrupt, next, err)
			}
			src.Key = op.Key
			if !op.Base.IsZero() {
				src.Version = op.Base
				return nil
			}
			next = op.ChainOf
		}
		return nil
	})
	return src, perr("source", path, err)
}
