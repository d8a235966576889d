package local

import (
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit. A bbolt commit costs two disk flushes, and closes, creates and opens for
// writing each need one before they return (invariants 1 and 2). When programs do these at
// the same time, their changes share a transaction: the first caller commits at once, with
// whatever is queued; callers that arrive while it commits are committed together by the next
// one. A lone caller waits for nothing more than its own commit.

// commitCall is one caller's change waiting for a shared transaction.
type commitCall struct {
	fn   func(*bolt.Tx) error
	err  error
	wake chan bool // true: this caller commits the queue; false: its change is committed (err)
	// answered: err is final and the caller woken; only the committing caller touches it.
	answered bool
}

// committer runs changes in shared bbolt transactions.
type committer struct {
	db *bolt.DB

	mu      sync.Mutex
	queue   []*commitCall // GUARDED_BY(mu): changes no commit has taken yet
	running bool          // GUARDED_BY(mu): a caller is committing; it hands over or clears this
}

// update runs fn in a committed transaction, possibly shared with other callers' changes, and
// returns fn's error or the commit's. fn must be idempotent: it may run more than once, each
// time in a transaction that rolled back the last (a change that fails is taken out of its
// batch and the others run again without it). Its error is what it would have been alone at
// its place in the order of the batch: the changes before it are applied when it runs.
func (c *committer) update(fn func(*bolt.Tx) error) error {
	call, lead := c.enqueue(fn)
	return c.run(call, lead)
}

// start is update that returns at once: fn takes its place in the order of changes now, and
// done is called with update's result once it is committed (or failed). A change enqueued
// after start returns runs after fn, in the same transaction or a later one.
func (c *committer) start(fn func(*bolt.Tx) error, done func(error)) {
	call, lead := c.enqueue(fn)
	go func() { done(c.run(call, lead)) }()
}

// enqueue puts fn in the queue; lead says that no commit is running and the caller is to
// run one.
func (c *committer) enqueue(fn func(*bolt.Tx) error) (call *commitCall, lead bool) {
	call = &commitCall{fn: fn, wake: make(chan bool, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queue = append(c.queue, call)
	if c.running {
		return call, false
	}
	c.running = true
	return call, true
}

// run waits for call's change to be committed, or commits the queue when call is handed the
// lead, and returns call's result.
func (c *committer) run(call *commitCall, lead bool) error {
	if !lead {
		if lead := <-call.wake; !lead {
			return call.err
		}
	}
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()

	defer func() {
		if p := recover(); p != nil {
			// Nobody may wait for good behind a panic: the batch fails, the next caller
			// commits, and the panic goes on.
			for _, other := range batch {
				if other != call && !other.answered {
					other.err, other.answered = fmt.Errorf("commit: %v", p), true
					other.wake <- false
				}
			}
			c.handOver()
			panic(p)
		}
	}()
	c.commit(call, batch)
	c.handOver()
	return call.err
}

// handOver passes the lead to the first change queued while a commit ran, or ends the run.
func (c *committer) handOver() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) > 0 {
		c.queue[0].wake <- true // the next batch is its caller's to commit
	} else {
		c.running = false
	}
}

// commit runs batch in one transaction, in order. A change that fails gets its error and
// leaves the batch, which runs again without it; a commit that fails fails them all. Every
// caller but leader, the one running this, is woken with its result.
func (c *committer) commit(leader *commitCall, batch []*commitCall) {
	done := func(call *commitCall, err error) {
		call.err, call.answered = err, true
		if call != leader {
			call.wake <- false
		}
	}
	for len(batch) > 0 {
		failed := -1
		var failErr error
		err := c.db.Update(func(tx *bolt.Tx) error {
			for i, call := range batch {
				if err := call.fn(tx); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, call := range batch {
				done(call, err)
			}
			return
		}
		done(batch[failed], failErr)
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

// newDataID is a data file id no record has and none was handed out before in this process,
// recorded as the ids' sequence in tx. A rolled-back transaction gives its sequence numbers
// back to bbolt, and a caller that made or removed a data file for one would then touch the
// file of whoever got the number next (a create's cleanup removed another create's data
// file). lastID outlives rollbacks; after a restart, Open has removed every data file no
// record owns before any id is handed out.
func (l *Layer) newDataID(tx *bolt.Tx) (uint64, error) {
	b := tx.Bucket(bIDs)
	id := l.reserveID(b.Sequence())
	return id, b.SetSequence(id)
}

// reserveID hands out a data file id greater than seq, the ids' sequence as some transaction
// read it, and than every id handed out before.
func (l *Layer) reserveID(seq uint64) uint64 {
	for {
		last := l.lastID.Load()
		if id := max(last, seq) + 1; l.lastID.CompareAndSwap(last, id) {
			return id
		}
	}
}

// entrySync makes the directory entries of new data files durable, one fsync of data/ for
// all the files made since the last one. A create does not wait for it: an entry lost by a
// crash leaves a record of an empty file whose data file Open recreates empty. The first
// close or fsync with bytes to keep waits for it, before its commit records the size.
type entrySync struct {
	mu      sync.Mutex
	cond    sync.Cond // L is &mu
	made    uint64    // GUARDED_BY(mu): data files made so far
	synced  uint64    // GUARDED_BY(mu): of those, the ones whose entries are durable
	running bool      // GUARDED_BY(mu): an fsync of the directory is under way
}

// add notes that a data file was created; its entry is not durable yet.
func (s *entrySync) add() {
	s.mu.Lock()
	s.made++
	s.mu.Unlock()
}

// wait returns once every entry made before the call is durable, sharing an fsync of dir
// with the callers that wait at the same time.
func (s *entrySync) wait(dir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond.L == nil {
		s.cond.L = &s.mu
	}
	want := s.made
	for s.synced < want {
		if s.running {
			s.cond.Wait()
			continue
		}
		s.running = true
		upTo := s.made
		s.mu.Unlock()
		err := syncDir(dir)
		s.mu.Lock()
		s.running = false
		s.cond.Broadcast()
		if err != nil {
			return err // the waiters try again themselves
		}
		s.synced = max(s.synced, upTo)
	}
	return nil
}
