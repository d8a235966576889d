package read

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// chunk is one ranged GET into one buffer, whose memory was taken from the budget before the
// chunk was created.
type chunk struct {
	start, end int64
	cancel     context.CancelFunc

	// All GUARDED_BY(Reader.mu).
	buf     []byte        // nil until the first bytes arrive; buf[:filled] is immutable
	filled  int64         // bytes of buf received
	err     error         // the GET failed for good; set before the chunk leaves the list
	dropped bool          // no longer wanted: canceled and out of the list
	wake    chan struct{} // closed when filled, err or dropped change; nil if nobody waits
	refs    int           // memory is released when this reaches 0 (see Reader.unref)
}

// wakeAll wakes every read waiting on c.
// LOCKS_REQUIRED(Reader.mu)
func (c *chunk) wakeAll() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// start creates the chunk [start, end), whose memory the caller has acquired, appends it to
// r.chunks and starts its GET.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) start(start, end int64) {
	ctx, cancel := context.WithCancel(r.ctx)
	c := &chunk{start: start, end: end, cancel: cancel, refs: 2} // the list's and the GET's
	r.chunks = append(r.chunks, c)
	r.inflight++
	r.wg.Add(1)
	go r.run(ctx, c)
}

// run is a chunk's goroutine: it fetches the chunk, publishing progress so reads of its first
// bytes need not wait for the last, then tops the window up since a GET slot is free.
// LOCKS_EXCLUDED(r.mu)
func (r *Reader) run(ctx context.Context, c *chunk) {
	defer r.wg.Done()
	// Taken here, not under the lock: a new buffer is zeroed first, which takes a while.
	buf := getBuf(c.end - c.start)
	err := r.fetch(ctx, buf, c.start, func(filled int) {
		r.mu.Lock()
		c.buf, c.filled = buf, int64(filled)
		c.wakeAll()
		r.mu.Unlock()
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	// Set also when no byte arrived, so that the last unref recycles it.
	c.buf = buf
	c.cancel()
	r.inflight--
	if err != nil && !c.dropped {
		// Waiting reads get the error; later reads of these bytes try again directly.
		c.err = err
		r.remove(c)
	}
	c.wakeAll()
	r.unref(c)
	r.prefetch()
}

// direct fetches [off, off+len(dst)) straight into dst, for bytes no chunk holds.
// LOCKS_EXCLUDED(r.mu)
func (r *Reader) direct(ctx context.Context, dst []byte, off int64) error {
	// Close must interrupt it like a prefetch GET.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)()
	err := r.fetch(ctx, dst, off, nil)
	if err != nil && r.ctx.Err() != nil {
		return ErrClosed
	}
	return err
}

// errShortBody: a body ended before the range did; the range is requested again.
var errShortBody = errors.New("body ended early")

// fetch fills buf with the bytes at off, passing If-Match. A body that breaks mid-stream is
// resumed from the byte where it stopped, at most maxBodyRetries times; an error of the GET
// itself is final (the store already retried what is worth retrying).
func (r *Reader) fetch(ctx context.Context, buf []byte, off int64, progress func(filled int)) error {
	done := 0
	for retries := 0; ; retries++ {
		at := off + int64(done)
		body, _, err := r.cfg.Store.Get(ctx, r.key, at, int64(len(buf)-done), r.etag)
		if err != nil {
			return fmt.Errorf("read %q at %d: %w", r.key, at, err)
		}
		n, err := readInto(body, buf[done:], r.cfg.tune.publishEvery, func(n int) {
			if progress != nil {
				progress(done + n)
			}
		})
		body.Close()
		done += n
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if retries >= maxBodyRetries {
			return fmt.Errorf("read %q at %d: giving up after %d broken bodies: %w", r.key, off+int64(done), retries+1, err)
		}
	}
}

// readInto reads body until buf is full, calling progress every publishEvery bytes and at
// the end. A body that ends early is errShortBody.
func readInto(body io.Reader, buf []byte, publishEvery int, progress func(n int)) (int, error) {
	n, published := 0, 0
	for n < len(buf) {
		m, err := body.Read(buf[n:])
		n += m
		if n-published >= publishEvery || (n == len(buf) && n > published) {
			progress(n)
			published = n
		}
		if n == len(buf) {
			return n, nil
		}
		if err == io.EOF {
			return n, errShortBody
		}
		if err != nil {
			if n > published {
				progress(n)
			}
			return n, err
		}
	}
	return n, nil
}
