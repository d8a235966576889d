package local

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// RemoteSource says where the bucket holds the bytes of the file at path, for a read or a
// fetch of a file whose data is not local: its own key and base, or, while a rename's copy to
// it has not run (PendingCopy), the key the copy reads from, following chained renames back to
// the object that exists (mv a b; mv b c before any copy: the bytes are still at a).
func (l *Layer) RemoteSource(path string) (key string, v syncrule.Version, err error) {
	err = l.view(func(tx *bolt.Tx) error {
		r, err := visibleRec(tx, path)
		if err != nil {
			return err
		}
		key, v = keyOf(l.opts.Prefix, r.Kind, path), r.State.Base
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
			key = op.Key
			if !op.Base.IsZero() {
				v = op.Base
				return nil
			}
			next = op.ChainOf
		}
		return nil
	})
	return key, v, perr("source", path, err)
}
