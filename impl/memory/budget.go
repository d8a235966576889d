// Package memory owns the process-wide limit on memory held for file data: buffers of
// prefetched reads (impl/read) and, later, parts waiting to be uploaded. Every such buffer is
// accounted here before it is allocated, so one busy file cannot exhaust the machine.
//
// This package only counts bytes; it never allocates, pools or frees buffers, and knows
// nothing about S3 or files. Callers must Release exactly what they acquired.
package memory

import (
	"container/list"
	"context"
	"fmt"
	"sync"
)

// Budget is a counting limiter of bytes shared by all users. It is safe for concurrent use.
//
// Acquire waits in FIFO order, so a large request is not starved by a stream of small ones.
// A request larger than the whole limit is granted alone, when nothing else is held: the
// limit is then exceeded by that one request only, which beats deadlocking a caller that
// cannot split its work (a huge upload part).
type Budget struct {
	limit int64

	mu      sync.Mutex
	inUse   int64     // GUARDED_BY(mu)
	waiters list.List // of *waiter, oldest first; GUARDED_BY(mu)
}

type waiter struct {
	n     int64
	ready chan struct{} // closed once the bytes are granted
}

// NewBudget returns a budget of limitBytes. A limit <= 0 grants only oversized requests made
// alone, which is useless; callers should pass a positive limit.
func NewBudget(limitBytes int64) *Budget {
	return &Budget{limit: limitBytes}
}

// Limit returns the configured limit in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// InUse returns the bytes currently acquired and not yet released.
func (b *Budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inUse
}

// Acquire blocks until n bytes are available and takes them, or returns ctx's error (having
// taken nothing) when ctx is done first.
func (b *Budget) Acquire(ctx context.Context, n int64) error {
	checkSize(n)
	if n == 0 {
		return nil
	}
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.fits(n) {
		b.inUse += n
		b.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready:
		// Granted while we were giving up: hand the bytes back to whoever is next.
		b.inUse -= n
	default:
		b.waiters.Remove(elem)
	}
	// Either way the head of the queue may have changed; it may fit now.
	b.grant()
	return ctx.Err()
}

// TryAcquire takes n bytes if they are available now, without waiting. It fails while others
// are queued in Acquire, so opportunistic users (prefetch) never overtake a waiting one.
func (b *Budget) TryAcquire(n int64) bool {
	checkSize(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	if n == 0 {
		return true
	}
	if b.waiters.Len() > 0 || !b.fits(n) {
		return false
	}
	b.inUse += n
	return true
}

// Release returns n bytes previously acquired.
func (b *Budget) Release(n int64) {
	checkSize(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.inUse {
		panic(fmt.Sprintf("memory: releasing %d bytes with only %d in use", n, b.inUse))
	}
	b.inUse -= n
	b.grant()
}

// fits reports whether n more bytes may be granted. Written as a subtraction so a limit
// near MaxInt64 cannot overflow.
// LOCKS_REQUIRED(b.mu)
func (b *Budget) fits(n int64) bool {
	return n <= b.limit-b.inUse || b.inUse == 0
}

// grant wakes queued waiters, oldest first, while they fit. It stops at the first that does
// not, to keep FIFO order.
// LOCKS_REQUIRED(b.mu)
func (b *Budget) grant() {
	for e := b.waiters.Front(); e != nil; e = b.waiters.Front() {
		w := e.Value.(*waiter)
		if !b.fits(w.n) {
			return
		}
		b.inUse += w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}

func checkSize(n int64) {
	if n < 0 {
		panic(fmt.Sprintf("memory: negative size %d", n))
	}
}
