package local

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Creates answered before their commit. The kernel holds a directory's lock across a
// create, so the files made in one directory reach the layer one at a time; a create that
// waited for its own commit (two disk flushes) let no other create in while it did. A new
// file's record is instead committed in the background, sharing the commit with whatever else
// is queued, and the create returns at once.
//
// Why nothing is lost: the file is brand new (no record at its path, not even a tombstone),
// so until its record is committed its data file belongs to no record. A crash then leaves
// an orphan data file that Open removes: nothing a program closed, since a close or fsync of
// the file waits for the record's commit before its own (invariants 1 and 2 hold for every
// file a record names). Everything else sees the layer as if the create had committed:
//   - Stat and Lookup of the new path answer from the pending record, and a directory's
//     mtime includes its pending creates, so the kernel's lookups and revalidations of the
//     directory being filled never wait;
//   - every other read and every change first waits for the pending creates (settle), so
//     it runs on a store that has them;
//   - a change queued with the shared committer after the create runs after its record.

// pendingCreate is one create answered before its record was committed.
type pendingCreate struct {
	path   string
	info   Info          // what the committed record will say
	dirImp bool          // whether its directory's listing is in the layer, as Lookup reports
	done   chan struct{} // closed when the record is committed, or its commit failed (err)
	err    error         // the commit's error; set before done is closed
}

// pendingDir is what a directory's pending creates change in its record: the mtime of the
// latest.
type pendingDir struct {
	n  int
	at time.Time
}

// pendingCreates is the table of creates whose records are not committed yet.
type pendingCreates struct {
	n      atomic.Int64 // entries in byPath, read without mu by settle's fast path
	mu     sync.Mutex
	byPath map[string]*pendingCreate // GUARDED_BY(mu)
	dirs   map[string]*pendingDir    // GUARDED_BY(mu): by the directory of each entry
}

// add puts c in the table, or returns false when its path is already there.
func (p *pendingCreates) add(c *pendingCreate) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byPath == nil {
		p.byPath, p.dirs = map[string]*pendingCreate{}, map[string]*pendingDir{}
	}
	if p.byPath[c.path] != nil {
		return false
	}
	p.byPath[c.path] = c
	dir, _ := keymap.Split(c.path)
	d := p.dirs[dir]
	if d == nil {
		d = &pendingDir{}
		p.dirs[dir] = d
	}
	d.n++
	if c.info.Attr.Mtime.After(d.at) {
		d.at = c.info.Attr.Mtime
	}
	p.n.Add(1)
	return true
}

// remove takes c out of the table once its commit ended, before its waiters are woken:
// what reads the store from then on finds the record there (or, after a failed commit, no
// record).
func (p *pendingCreates) remove(c *pendingCreate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byPath[c.path] != c {
		return
	}
	delete(p.byPath, c.path)
	dir, _ := keymap.Split(c.path)
	if d := p.dirs[dir]; d != nil {
		if d.n--; d.n == 0 {
			delete(p.dirs, dir)
		}
	}
	p.n.Add(-1)
}

// lookup returns the pending create at path, and the mtime path's own pending creates give
// it as a directory (zero if none).
func (p *pendingCreates) lookup(path string) (*pendingCreate, time.Time) {
	if p.n.Load() == 0 {
		return nil, time.Time{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var at time.Time
	if d := p.dirs[path]; d != nil {
		at = d.at
	}
	return p.byPath[path], at
}

// has reports whether path is a pending create.
func (p *pendingCreates) has(path string) bool {
	c, _ := p.lookup(path)
	return c != nil
}

// settle waits until every create pending when it was called has its commit behind it, and
// returns the error of one whose commit failed (most callers go on: the failed create left
// nothing in the store, and its own handle reports it).
func (p *pendingCreates) settle() error {
	if p.n.Load() == 0 {
		return nil
	}
	p.mu.Lock()
	waits := make([]*pendingCreate, 0, len(p.byPath))
	for _, c := range p.byPath {
		waits = append(waits, c)
	}
	p.mu.Unlock()
	var err error
	for _, c := range waits {
		<-c.done
		if c.err != nil {
			err = c.err
		}
	}
	return err
}

// errNotNew: a create's path has a record (a tombstone too), so the create is not answered
// before its commit.
var errNotNew = errors.New("not new to the layer")
