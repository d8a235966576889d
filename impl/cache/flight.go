package cache

import (
	"context"
	"io"
	"sync"
)

// publishEvery is how many bytes of a block a fetch receives between wake-ups of the Gets
// waiting for it: small, so that a read does not wait for a whole block to arrive (the
// prefetcher above publishes at the same grain).
const publishEvery = 64 << 10

// flight is one block being loaded or fetched. Every access to a block goes through one,
// so concurrent Gets of a block share one disk read or one inner GET, and a block is never
// loaded while it is being stored.
type flight struct {
	mu     sync.Mutex
	buf    []byte        // GUARDED_BY(mu): the block as it arrives; buf[:filled] is immutable
	filled int           // GUARDED_BY(mu)
	size   int64         // GUARDED_BY(mu): the object size the fetch was told; -1 unknown
	done   bool          // GUARDED_BY(mu): blk or err is final
	blk    block         // GUARDED_BY(mu)
	err    error         // GUARDED_BY(mu)
	wake   chan struct{} // GUARDED_BY(mu): closed on progress; nil if nobody waits
}

// progress publishes buf[:filled], and the object size the store gave (-1 if none).
// LOCKS_EXCLUDED(f.mu)
func (f *flight) progress(buf []byte, filled int, size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf, f.filled, f.size = buf, filled, size
	f.wakeAll()
}

// finish publishes the whole block, or the error that ends the flight.
// LOCKS_EXCLUDED(f.mu)
func (f *flight) finish(b block, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blk, f.err, f.done = b, err, true
	f.wakeAll()
}

// LOCKS_REQUIRED(f.mu)
func (f *flight) wakeAll() {
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
}

// wait returns once the flight holds bytes past from (the block's bytes so far), or once
// it is done (the block or its error, and done).
// LOCKS_EXCLUDED(f.mu)
func (f *flight) wait(ctx context.Context, from int64) (block, bool, error) {
	for {
		f.mu.Lock()
		switch {
		case f.done:
			defer f.mu.Unlock()
			return f.blk, true, f.err
		case int64(f.filled) > from:
			defer f.mu.Unlock()
			return block{data: f.buf[:f.filled], size: f.size}, false, nil
		}
		if f.wake == nil {
			f.wake = make(chan struct{})
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return block{}, false, ctx.Err()
		}
	}
}

// fill reads rc into buf, publishing progress to f every publishEvery bytes. It returns
// io.EOF if the body ended before buf was full.
func fill(rc io.Reader, buf []byte, f *flight, size int64, publishEvery int) (int, error) {
	n, published := 0, 0
	for n < len(buf) {
		m, err := rc.Read(buf[n:])
		n += m
		if n-published >= publishEvery && n < len(buf) {
			f.progress(buf, n, size)
			published = n
		}
		if err != nil && n < len(buf) {
			return n, err
		}
	}
	return n, nil
}
