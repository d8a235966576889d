package local

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// Expire drops the local data of a clean file (Y10); its metadata stays, so listings and
// stats stay local. The rule decides (syncrule.MayExpire, age waived): dirty, in-flight and
// lost+found data is refused with ErrDirty (invariant 6), an open file with ErrBusy. The data
// file is removed only after the commit that says it is gone.
func (l *Layer) Expire(path string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var id uint64
	err := l.update(func(tx *bolt.Tx) error {
		r, err := localFile(tx, path)
		if err != nil {
			return err
		}
		if l.files[r.ID] != nil {
			return ErrBusy
		}
		now := l.now()
		if r.State.LastUsed.After(now) {
			now = r.State.LastUsed
		}
		if !syncrule.MayExpire(r.State, now, syncrule.Params{}) {
			return ErrDirty
		}
		r.State, _ = syncrule.Next(r.State, syncrule.DataExpired{}, noParams)
		id = r.ID
		return putRec(tx, path, r)
	})
	if err != nil {
		return perr("expire", path, err)
	}
	os.Remove(l.dataPath(id))
	return nil
}

// PutData stores the bytes of version v of a file whose data is not local (the import of Y1,
// Y2, or the fetch after expiry, Y10). The data file is written, fsync'd and renamed into place
// before the record says the data is local. If the file's base is no longer v (a remote change
// raced with the fetch), the bytes are discarded and ErrInvalid is returned.
func (l *Layer) PutData(path string, v syncrule.Version, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Join(l.dir, DataDir), tmpPrefix)
	if err != nil {
		return perr("put-data", path, err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return perr("put-data", path, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var placed string
	err = l.update(func(tx *bolt.Tx) error {
		rec, err := visibleRec(tx, path)
		if err != nil {
			return err
		}
		if rec.Kind != KindFile || rec.State.Data == syncrule.LocalData {
			return ErrInvalid
		}
		st, _ := syncrule.Next(rec.State, syncrule.DataImported{Version: v, At: l.now()}, noParams)
		if st.Data != syncrule.LocalData || n != st.Size {
			return fmt.Errorf("%w: data of %v (%d bytes) is not the file's base %v (%d bytes)", ErrInvalid, v, n, rec.State.Base, st.Size)
		}
		if rec.ID == 0 {
			if rec.ID, err = tx.Bucket(bIDs).NextSequence(); err != nil {
				return err
			}
		}
		placed = l.dataPath(rec.ID)
		if err := os.Rename(tmp.Name(), placed); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(placed)); err != nil {
			return err
		}
		rec.State = st
		return putRec(tx, path, rec)
	})
	if err != nil && placed != "" {
		os.Remove(placed)
	}
	return perr("put-data", path, err)
}

func sortInfos(s []Info) { sort.Slice(s, func(i, j int) bool { return s[i].Path < s[j].Path }) }
