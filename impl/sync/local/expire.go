package local

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

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
		if l.files[r.ID] != nil || shared(tx, r.ID, path) {
			// Open, or linked: a fetch for one name would give it its own copy of the
			// data, and the names would no longer be one file.
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
		if rec.Kind != KindFile {
			return ErrInvalid
		}
		if rec.State.Data == syncrule.LocalData {
			// Another fetch of the same bytes (the importer's, the engine's after a
			// conflict) got there first, or a program has written newer ones: either way
			// there is nothing to import, and these bytes are dropped.
			return errAlreadyLocal
		}
		st, _ := syncrule.Next(rec.State, syncrule.DataImported{Version: v, At: l.now()}, noParams)
		if st.Data != syncrule.LocalData || n != st.Size {
			return fmt.Errorf("%w: data of %v (%d bytes) is not the file's base %v (%d bytes)", ErrInvalid, v, n, rec.State.Base, st.Size)
		}
		if rec.ID != 0 && shared(tx, rec.ID, path) {
			// A name of a linked file whose data was found missing (recovery): the fetched
			// bytes are this name's own, never put over the data file its other names use.
			if err := dropIDPath(tx, rec.ID, path); err != nil {
				return err
			}
			rec.ID = 0
		}
		if rec.ID == 0 {
			if rec.ID, err = l.newDataID(tx); err != nil {
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
	if err == errAlreadyLocal {
		return nil
	}
	return perr("put-data", path, err)
}

// errAlreadyLocal ends PutData's transaction without a change when the data is already local.
var errAlreadyLocal = errors.New("data already local")

func sortInfos(s []Info) { sort.Slice(s, func(i, j int) bool { return s[i].Path < s[j].Path }) }

// ExpireUnused drops the local data of every file the rule lets expire at now (Y10:
// syncrule.MayExpire: clean, nothing in flight, not in lost+found, unused for p.ExpireAfter),
// skipping open files. It lists candidates in one read transaction and expires each through
// Expire, which checks the rule again under the write lock, so a file changed meanwhile keeps
// its data. It returns the number of files expired and their bytes.
func (l *Layer) ExpireUnused(now time.Time, p syncrule.Params) (files int, bytes int64, err error) {
	if p.ExpireAfter < 0 {
		return 0, 0, nil
	}
	var paths []string
	var sizes []int64
	l.mu.Lock()
	l.flushTouchesLocked() // a read TouchLater has not recorded yet still keeps its file
	err = l.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bNodes).ForEach(func(k, v []byte) error {
			path := pathOfNodeKey(k)
			r, err := decodeRec(path, v)
			if err != nil {
				return err
			}
			if r.Kind == KindFile && l.files[r.ID] == nil && syncrule.MayExpire(r.State, now, p) && !shared(tx, r.ID, path) {
				paths, sizes = append(paths, path), append(sizes, r.State.Size)
			}
			return nil
		})
	})
	l.mu.Unlock()
	if err != nil {
		return 0, 0, err
	}
	for i, path := range paths {
		switch err := l.Expire(path); {
		case err == nil:
			files, bytes = files+1, bytes+sizes[i]
		case errors.Is(err, ErrDirty), errors.Is(err, ErrBusy), errors.Is(err, ErrNotFound), errors.Is(err, ErrNoData):
			// Changed, opened or removed since the listing: it is not unused any more.
		default:
			return files, bytes, err
		}
	}
	return files, bytes, nil
}
