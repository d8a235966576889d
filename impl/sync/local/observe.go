package local

import (
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Observations close a race of the remote-change watcher (C2). A listing or HEAD can show an
// object this mount is deleting; by the time the watcher acts on what it saw, the delete may
// have reached the bucket and its tombstone been removed, so the name has no record at all and
// looks new. Imported again, a file deleted here would come back until the next poll, and an
// rmdir of its directory would fail with ENOTEMPTY (found by the crash cycles: `rm -r` of a
// directory while a poll listed it). While an observation of a directory is open, the names of
// it whose records are removed are noted, and ImportDir and ApplyRemote create no record for
// them: what the observer saw may predate the removal, and the next observation decides.
type observations struct {
	mu   sync.Mutex
	open map[string][]*observation // by directory; GUARDED_BY(mu)
}

type observation struct {
	removed map[string]bool // names of the directory removed while open; GUARDED_BY(observations.mu)
}

// Observe opens an observation of directory dir's names, to be opened before its records are
// read and the bucket asked, and ended (by calling end) after what was seen is applied.
func (l *Layer) Observe(dir string) (end func()) {
	o := &observation{removed: map[string]bool{}}
	obs := &l.observed
	obs.mu.Lock()
	if obs.open == nil {
		obs.open = map[string][]*observation{}
	}
	obs.open[dir] = append(obs.open[dir], o)
	obs.mu.Unlock()
	return func() {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		list := obs.open[dir]
		for i, x := range list {
			if x == o {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(obs.open, dir)
		} else {
			obs.open[dir] = list
		}
	}
}

// noteRemoved records that path's record is being removed, for the open observations of its
// directory. It is called inside the removing transaction: a removal that then rolls back
// only makes an observer skip the name once.
func (l *Layer) noteRemoved(path string) {
	dir, name := keymap.Split(path)
	obs := &l.observed
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, o := range obs.open[dir] {
		o.removed[name] = true
	}
}

// removedWhileObserved reports whether path's record was removed while an observation of its
// directory that is still open was open. Writers of records are serialized by bbolt, so a
// removal committed before the caller's transaction began has been noted.
func (l *Layer) removedWhileObserved(path string) bool {
	dir, name := keymap.Split(path)
	obs := &l.observed
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, o := range obs.open[dir] {
		if o.removed[name] {
			return true
		}
	}
	return false
}

// delRec removes the record at path (delRecTx), noting it for the observations of its
// directory.
func (l *Layer) delRec(tx *bolt.Tx, path string, r *record) error {
	l.noteRemoved(path)
	return delRecTx(tx, path, r)
}
