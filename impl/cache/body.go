package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// errClosed is returned by a Read after Close.
var errClosed = errors.New("cache: read of a closed body")

// body is the reader a cached Get returns: it walks the range block by block, taking each
// from the backend, from a fetch already under way, or from a run of missing blocks it
// fetches itself. Like any io.ReadCloser it is used by one goroutine at a time.
type body struct {
	e      *engine
	ctx    context.Context    // the Get's: bounds waiting and loading
	runCtx context.Context    // the fetches this body starts; not canceled with ctx
	cancel context.CancelFunc // cancels runCtx
	stop   func() bool        // stops calling abandon when ctx ends
	taken  atomic.Bool        // the whole range is in cur or was read: fetches may finish
	key    string
	etag   string

	off     int64             // where the Get started
	pos     int64             // the next byte to take from a block
	end     int64             // end of the range, clipped to the object once its size is known; -1: not yet known
	size    int64             // the object size as the first block told it; -1 unknown
	cur     []byte            // taken, not yet read: a slice of a shared block
	err     error             // sticky: io.EOF at the end, or the error that ended the body
	pending map[int64]*flight // blocks of runs this body started, not yet reached
	fl      *flight           // the flight of block fli, which pos is in
	fli     int64
}

// Read implements io.Reader.
func (b *body) Read(p []byte) (int, error) {
	for len(b.cur) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.end >= 0 && b.pos >= b.end {
			b.err = io.EOF
		} else if err := b.next(); err != nil {
			b.err = err
		}
		if b.err == io.EOF {
			b.taken.Store(true)
		}
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

// Close implements io.Closer.
func (b *body) Close() error {
	b.stop()
	b.abandon()
	b.cur, b.err = nil, errClosed
	return nil
}

// abandon stops the fetches this body started if it is closed, or its context ends,
// before it has taken its whole range: nobody may want the rest. (The Gets waiting on them
// then fetch for themselves.) Otherwise they go on: at most the rest of the range's last
// block is left to fetch, and caching whole blocks is the point. Without a cancel the
// context holds nothing: its parent is never canceled.
func (b *body) abandon() {
	if !b.taken.Load() {
		b.cancel()
	}
}

// next takes the bytes of the block at pos that have arrived and lie in the range into
// cur. At the end of the object it returns io.EOF, or, when the range starts there,
// ErrInvalidRange as the store would (except at 0 in an empty object: an empty body).
func (b *body) next() error {
	bs := b.e.codec.bs
	i := b.pos / bs
	start := i * bs
	first := b.pos == b.off
	blk, err := b.wait(i)
	if err != nil {
		if !first && errors.Is(err, s3.ErrInvalidRange) {
			return io.EOF // the previous block was full and ended the object
		}
		return err
	}
	if blk.size >= 0 {
		if first {
			b.size = blk.size
		}
		if b.end < 0 || b.end > blk.size {
			b.end = blk.size
		}
	}
	have := start + int64(len(blk.data))
	if b.pos >= have { // only once done: a partial block always has bytes past pos
		if first && b.pos > 0 {
			return fmt.Errorf("cache GetObject %q: %w (offset %d, size %d)", b.key, s3.ErrInvalidRange, b.pos, have)
		}
		return io.EOF
	}
	hi := have
	if b.end >= 0 && b.end < hi {
		hi = b.end
	}
	b.cur = blk.data[b.pos-start : hi-start]
	b.pos = hi
	if b.pos == b.end {
		b.taken.Store(true)
	}
	return nil
}

// wait waits for block i to have bytes past pos, or to be done: from a run this body
// started, or from a new flight.
func (b *body) wait(i int64) (block, error) {
	for attempt := 0; ; attempt++ {
		if b.fl == nil || b.fli != i {
			f := b.pending[i]
			delete(b.pending, i)
			if f == nil {
				f = b.plan(i)
			}
			b.fl, b.fli = f, i
		}
		blk, done, err := b.fl.wait(b.ctx, b.pos-i*b.e.codec.bs)
		if done && err != nil && isCanceled(err) && b.ctx.Err() == nil && attempt < maxJoinRetries {
			b.fl = nil // the Get that was fetching it went away; this one has not
			continue
		}
		return blk, err
	}
}

// plan returns the flight of block i. If no Get is loading or fetching it, this body loads
// it from the backend or, on a miss, starts one GET for it and the missing blocks after it
// (up to the end of the range and maxRun), whose flights it keeps for later.
func (b *body) plan(i int64) *flight {
	e := b.e
	id := blockID{key: b.key, etag: b.etag, index: i}
	f, owner := e.acquire(id)
	if !owner {
		return f
	}
	if blk, ok := e.be.load(b.ctx, id); ok {
		e.hits.Add(1)
		f.finish(blk, nil)
		e.release(id, f)
		return f
	}
	last := i + int64(e.maxRun) - 1
	if b.end >= 0 {
		last = min(last, (b.end-1)/e.codec.bs)
	}
	run := []*flight{f}
	for j := i + 1; j <= last; j++ {
		jd := blockID{key: b.key, etag: b.etag, index: j}
		if e.be.mayHave(jd) {
			break
		}
		g, owner := e.acquire(jd)
		if !owner {
			break
		}
		run = append(run, g)
		b.pending[j] = g
	}
	e.wg.Add(1)
	go e.fetch(b.runCtx, b.key, b.etag, i, run)
	return f
}
