package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// DefaultBlockSize is the block size when a config leaves it zero: Mountpoint's, small
// enough that a random 4 KiB read does not fetch much more than it needs, large enough that
// a block file per MiB keeps the index and the directory small.
const DefaultBlockSize = 1 << 20

const (
	// maxRunBytes bounds one GET to the inner store for a run of missing blocks, and so the
	// memory one Get holds for blocks it fetched but has not yet handed over: the
	// prefetcher's default part, so that its GETs map one-to-one onto inner GETs.
	maxRunBytes = 8 << 20
	// maxRunBlocks bounds the flights of one run, for tiny block sizes: a read to the end
	// of an object of unknown size plans a whole run ahead.
	maxRunBlocks = 256
	// storeTimeout bounds writing a fetched run to the cache, which happens after the
	// reader has its bytes and so no longer has a context of its own.
	storeTimeout = time.Minute
	// maxJoinRetries: how often a Get starts over after the Get whose fetch it joined was
	// canceled (that Get's reader went away, not this one).
	maxJoinRetries = 3
)

// backend is where blocks live: a directory (disk.go) or a bucket (shared.go).
type backend interface {
	// load returns the block if it is stored and verifies. A block that does not verify is
	// a miss (and a disk backend deletes it). Errors are misses: a cache never fails a read.
	load(ctx context.Context, id blockID) (block, bool)
	// store saves the block, best effort.
	store(ctx context.Context, id blockID, b block)
	// mayHave says, without I/O, whether load could hit. A run of missing blocks stops at a
	// block that may be cached. A backend that cannot tell cheaply says false, and a run
	// then refetches blocks it might have had rather than probing each one in turn.
	mayHave(id blockID) bool
}

// engine is the caching Get shared by DiskCache and SharedCache.
type engine struct {
	inner   s3.Store
	be      backend
	codec   codec
	maxRun  int
	publish int // publishEvery; tests lower it to make partial blocks common

	mu      sync.Mutex
	flights map[blockID]*flight // GUARDED_BY(mu): blocks being loaded, fetched or stored
	wg      sync.WaitGroup      // fetch goroutines

	hits, misses atomic.Int64
}

func newEngine(inner s3.Store, be backend, c codec) *engine {
	return &engine{
		inner:   inner,
		be:      be,
		codec:   c,
		maxRun:  int(min(maxRunBlocks, max(1, maxRunBytes/c.bs))),
		publish: publishEvery,
		flights: map[blockID]*flight{},
	}
}

// get implements s3.Store.Get. Only a Get pinned to a version (ifMatch) can be cached: its
// bytes can never change. A zero length (which asks the store for the object's info only)
// and bad offsets go to the inner store, which knows the answers.
//
// The returned ObjectInfo holds Key, ETag and, when known, Size; a cached read does not
// know the object's other attributes. A read served from the cache does not notice that
// the object has changed since: it returns the bytes of the version asked for, which is
// all If-Match is for (never mixing two versions in one read).
func (e *engine) get(ctx context.Context, key string, off, length int64, ifMatch string) (io.ReadCloser, s3.ObjectInfo, error) {
	if ifMatch == "" || length == 0 || off < 0 {
		return e.inner.Get(ctx, key, off, length, ifMatch)
	}
	end := int64(-1) // to the end of the object
	if length > 0 && off <= 1<<62-length {
		end = off + length
	}
	// Fetches outlive the Get's context (its caller cancels it once it has its bytes, as
	// the prefetcher does) so that the block they end in is completed and cached; they stop
	// only if the Get is abandoned before it has its range (see body.abandon).
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b := &body{e: e, ctx: ctx, runCtx: runCtx, cancel: cancel, key: key, etag: ifMatch,
		off: off, pos: off, end: end, size: -1, pending: map[int64]*flight{}}
	b.stop = context.AfterFunc(ctx, b.abandon)
	// The first block is fetched now, so that errors (precondition, not found, range) come
	// from Get as the Store contract says, not from the first Read.
	switch err := b.next(); {
	case err == io.EOF:
		b.err = io.EOF // an empty object
		b.taken.Store(true)
	case err != nil:
		b.Close()
		return nil, s3.ObjectInfo{}, err
	}
	return b, s3.ObjectInfo{Key: key, ETag: ifMatch, Size: max(b.size, 0)}, nil
}

// acquire returns the flight of id and whether the caller created it and must finish it.
// LOCKS_EXCLUDED(e.mu)
func (e *engine) acquire(id blockID) (*flight, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f := e.flights[id]; f != nil {
		return f, false
	}
	f := &flight{}
	e.flights[id] = f
	return f, true
}

// release ends the flight: later Gets of id go to the backend again.
// LOCKS_EXCLUDED(e.mu)
func (e *engine) release(id blockID, f *flight) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.flights[id] == f {
		delete(e.flights, id)
	}
}

// fetch is the goroutine of one run: it GETs the blocks from the inner store in one ranged
// request and hands their bytes to waiters as they arrive, while a second goroutine stores
// each block once complete (so that writing overlaps the transfer instead of following
// it). It runs apart from the Get that started it so that the waiters of other Gets depend
// only on the network, never on how fast (or whether) that Get's caller reads.
// LOCKS_EXCLUDED(e.mu)
func (e *engine) fetch(ctx context.Context, key, etag string, first int64, run []*flight) {
	defer e.wg.Done()
	id := func(k int) blockID { return blockID{key: key, etag: etag, index: first + int64(k)} }
	complete := make(chan block, len(run)) // never full: the transfer never waits for a store
	stored := make(chan int)
	go func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		k := 0
		for blk := range complete {
			e.be.store(sctx, id(k), blk)
			// A flight ends only once stored, so no Get starts a second fetch in between.
			e.release(id(k), run[k])
			k++
		}
		stored <- k
	}()
	e.readRun(ctx, key, etag, first, run, complete)
	close(complete)
	for k := <-stored; k < len(run); k++ {
		e.release(id(k), run[k])
	}
}

// readRun reads run (the blocks from first on) from the inner store, finishes every flight
// in it and sends the blocks it fetched, in order, to complete.
func (e *engine) readRun(ctx context.Context, key, etag string, first int64, run []*flight, complete chan<- block) {
	bs := e.codec.bs
	start := first * bs
	failFrom := func(k int, err error) {
		for j, f := range run[k:] {
			// Out of the map first, so that a Get that retries starts a new flight.
			e.release(blockID{key: key, etag: etag, index: first + int64(k+j)}, f)
			f.finish(block{}, err)
		}
	}
	rc, info, err := e.inner.Get(ctx, key, start, int64(len(run))*bs, etag)
	if err != nil {
		failFrom(0, err)
		return
	}
	defer rc.Close()
	if info.ETag != "" && info.ETag != etag {
		// A store that ignores If-Match must not poison the cache with another version.
		failFrom(0, fmt.Errorf("cache GetObject %q: %w (got etag %s, want %s)", key, s3.ErrPreconditionFailed, info.ETag, etag))
		return
	}
	size := int64(-1)
	if info.Size > start {
		size = info.Size // from Content-Range: the store's word, checked against the body below
	}
	for k := range run {
		bstart := start + int64(k)*bs
		if size >= 0 && bstart >= size {
			failFrom(k, pastEnd(key, bstart, size))
			return
		}
		buf := make([]byte, bs)
		if size >= 0 {
			buf = buf[:min(bs, size-bstart)]
		}
		n, err := fill(rc, buf, run[k], size, e.publish)
		if err == io.EOF {
			if size >= 0 {
				err = io.ErrUnexpectedEOF
			} else {
				// With no size from the store, the end of the body is the end of the object.
				// (Full blocks before it were stored not knowing the size; that is allowed.)
				size, buf, err = bstart+int64(n), buf[:n], nil
				if n == 0 && bstart > 0 {
					failFrom(k, pastEnd(key, bstart, size))
					return
				}
			}
		}
		if err != nil {
			// A broken body: nothing from it past this point is trusted or cached.
			failFrom(k, fmt.Errorf("cache GetObject %q at %d: %w", key, bstart, err))
			return
		}
		blk := block{data: buf, size: size}
		run[k].finish(blk, nil)
		e.misses.Add(1)
		complete <- blk
		if int64(len(buf)) < bs {
			failFrom(k+1, pastEnd(key, bstart+int64(len(buf)), size))
			return
		}
	}
}

func pastEnd(key string, off, size int64) error {
	return fmt.Errorf("cache GetObject %q: %w (offset %d, size %d)", key, s3.ErrInvalidRange, off, size)
}

func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
