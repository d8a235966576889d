package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// recover reconciles the data files with the committed records. It never changes what a
// record says about dirtiness or the queue: those were committed before any data moved
// (invariants 1 and 5), so they are already right. It only settles the data files:
//
//   - a dirty file's data file is what programs wrote, closed or not: its size wins; the same
//     for a lost+found file, the only copy of what it holds;
//   - a missing data file of an empty file is recreated (a crash between Create's commit and
//     the file's creation);
//   - a missing or altered data file of a clean file is dropped: the bucket has the bytes;
//   - a missing data file of a dirty or lost+found, non-empty file cannot be explained by a crash: Open
//     refuses rather than pretend the file is empty;
//   - data files no record owns (a crash between a commit and the unlink it allowed), stale
//     imports and snapshots are removed.
func (l *Layer) recover() error {
	owned := map[string]bool{}
	var missingDirty []string
	err := l.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bNodes).Cursor()
		type fix struct {
			path string
			r    *record
		}
		var fixes []fix
		adopted := false
		for k, v := c.First(); k != nil; k, v = c.Next() {
			path := pathOfNodeKey(k)
			r, err := decodeRec(path, v)
			if err != nil {
				return err
			}
			if r.Kind != KindFile || r.State.Data != syncrule.LocalData {
				continue
			}
			if r.ID == 0 {
				return fmt.Errorf("%w: record %q has local data but no data id", ErrCorrupt, path)
			}
			name := l.dataPath(r.ID)
			fi, err := os.Stat(name)
			switch {
			case err == nil && fi.Size() == r.State.Size:
				owned[filepath.Base(name)] = true
			case err == nil && onlyCopy(r):
				// The size it adopts is what reached the file, not what was synced: the
				// bytes and the file's entry must be durable before a commit says so
				// (invariant 2), or a power loss soon after leaves a record with no file.
				if err := syncFile(name); err != nil {
					return err
				}
				adopted = true
				r.State.Size = fi.Size()
				fixes = append(fixes, fix{path, r})
				owned[filepath.Base(name)] = true
			case errors.Is(err, os.ErrNotExist) && r.State.Size == 0:
				if err := createEmpty(name); err != nil {
					return err
				}
				owned[filepath.Base(name)] = true
			case (err == nil || errors.Is(err, os.ErrNotExist)) && !onlyCopy(r):
				r.State.Data = syncrule.NoData
				fixes = append(fixes, fix{path, r})
			case errors.Is(err, os.ErrNotExist):
				missingDirty = append(missingDirty, path)
			default:
				return err
			}
		}
		if adopted {
			if err := syncDir(filepath.Join(l.dir, DataDir)); err != nil {
				return err
			}
		}
		for _, f := range fixes {
			if err := putRec(tx, f.path, f.r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return l.corrupt(err)
		}
		return err
	}
	if len(missingDirty) > 0 {
		return l.corrupt(fmt.Errorf("the data files of %d changed files are missing (first: /%s)",
			len(missingDirty), missingDirty[0]))
	}
	ents, err := os.ReadDir(filepath.Join(l.dir, DataDir))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !owned[e.Name()] && (strings.HasPrefix(e.Name(), tmpPrefix) || isDataName(e.Name())) {
			os.Remove(filepath.Join(l.dir, DataDir, e.Name()))
		}
	}
	snaps, _ := os.ReadDir(filepath.Join(l.dir, snapDir))
	for _, e := range snaps {
		os.Remove(filepath.Join(l.dir, snapDir, e.Name()))
	}
	return nil
}

// onlyCopy: the record's data file holds bytes the bucket does not have: a dirty file's, or a
// lost+found file's (C5: never uploaded, so clean, yet the only copy).
func onlyCopy(r *record) bool { return r.State.Dirty() || r.State.LostFound }

// isDataName: only names this package makes are ever removed, so a stray file a user put in
// the data dir is left alone.
func isDataName(n string) bool {
	if len(n) != 16 {
		return false
	}
	_, err := strconv.ParseUint(n, 16, 64)
	return err == nil
}

func createEmpty(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	// An empty file has no data to flush; the directory's fsync below makes its creation
	// durable (the inode and the entry are committed together).
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(name))
}

// createUnsynced makes an empty data file whose directory entry is not durable yet: the
// caller notes it in Layer.entries, which the first sync with bytes to keep waits for.
func createUnsynced(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// syncFile fsyncs the file name.
func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// syncDir makes a create, rename or unlink in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
