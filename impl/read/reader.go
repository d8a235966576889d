// Package read owns reading one version of one object for an open file handle: detecting
// sequential access, prefetching it with parallel ranged GETs (like Mountpoint's prefetcher),
// serving reads from the fetched parts, and fetching the least it can for random access.
//
// It talks to the bucket only through impl/s3.Store and accounts every buffer it holds in a
// shared impl/memory.Budget. It must not know about inodes, paths, FUSE or the kernel (impl/streamfs
// maps keys and errors), must not cache across handles, and must never exceed the budget: when
// memory is short it prefetches less and reads straight into the caller's buffer instead.
//
// # Locking
//
// Reader.mu guards the chunk list and the stream state. It is never held across a store call,
// an allocation of a part or a copy into a caller's buffer, so concurrent reads of one handle
// (the kernel sends several at once) only ever wait on the network for the bytes they need.
// Lock order: Reader.mu < memory.Budget's lock.
package read

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"

	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// Defaults for zero Config fields.
const (
	DefaultPartSize      = 8 << 20
	DefaultInitialWindow = 1 << 20
	DefaultMaxWindow     = 64 << 20
	DefaultMaxInFlight   = 16
)

// tuning is what is not worth a flag. Tests scale it down with the part size so that small
// objects exercise every path.
type tuning struct {
	// randomAlign: a random read fetches its size rounded up to this, so a small neighbour
	// read is served from memory without turning every 4 KiB read into a part-sized GET.
	randomAlign int64
	// seqSlack: outside a stream, a read this close to the previous one starts a stream.
	// It absorbs the kernel's first few reads arriving out of order.
	seqSlack int64
	// aheadSlack: a read this far past the frontier is still part of the stream, and the
	// bytes it skips are still fetched. With async reads the kernel sends a readahead burst
	// of several requests at once and they reach us in any order, so a read well ahead of the
	// last one is no seek.
	aheadSlack int64
	// keepBehind: buffered bytes kept behind the furthest read, for reads the kernel sent
	// earlier but that reached us later, and for short backward seeks. A read this close
	// behind is part of the stream.
	keepBehind int64
	// rewindReads: this many reads behind the stream in a row, with none advancing it, are a
	// rewind (the stream moves there); fewer are stragglers, served without disturbing it.
	rewindReads int
	// publishEvery: how many bytes a part's GET receives between wake-ups of waiting reads;
	// small enough that the first read of a part does not wait for the whole part.
	publishEvery int
}

var defaultTuning = tuning{
	randomAlign:  64 << 10,
	seqSlack:     1 << 20,
	aheadSlack:   16 << 20,
	keepBehind:   8 << 20,
	rewindReads:  4,
	publishEvery: 64 << 10,
}

// maxBodyRetries bounds how often one range is re-requested after its body broke.
const maxBodyRetries = 5

// ErrClosed is returned by reads on, or interrupted by, a closed Reader.
var ErrClosed = errors.New("read: reader closed")

// Config is shared by all readers of a mount.
type Config struct {
	Store  s3.Store
	Budget *memory.Budget // nil: no limit (tests only)
	// PartSize is the size of a prefetch GET once the window is large; part ranges are
	// aligned to it (--read-part-size). 0 means DefaultPartSize.
	PartSize int64
	// InitialWindow is how far ahead a new sequential stream prefetches. Small, so the first
	// bytes arrive fast; it doubles with each sequential read. 0 means DefaultInitialWindow.
	InitialWindow int64
	// MaxWindow caps the window; so does MaxInFlight*PartSize. 0 means DefaultMaxWindow.
	MaxWindow int64
	// MaxInFlight is the most prefetch GETs one reader runs at once. 0 means
	// DefaultMaxInFlight.
	MaxInFlight int

	// Stats, if set, is told of every reader's window (shared by the readers of a mount).
	Stats *Stats

	tune *tuning // nil: defaultTuning
}

// Stats sums the readers of a mount for its metrics. Safe for concurrent use.
type Stats struct {
	Readers atomic.Int64 // readers open now
	Window  atomic.Int64 // bytes their prefetch windows reach beyond their streams now
}

func (c Config) withDefaults() Config {
	if c.PartSize <= 0 {
		c.PartSize = DefaultPartSize
	}
	if c.InitialWindow <= 0 {
		c.InitialWindow = DefaultInitialWindow
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = DefaultMaxWindow
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.tune == nil {
		c.tune = &defaultTuning
	}
	if c.Budget == nil {
		c.Budget = memory.NewBudget(math.MaxInt64)
	}
	return c
}

// Reader reads one version (etag) of one object. It is safe for concurrent use; create one
// per open file handle and Close it on release.
type Reader struct {
	cfg       Config
	key, etag string
	size      int64
	maxWindow int64

	ctx    context.Context // parent of every prefetch GET; canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // prefetch goroutines

	mu        sync.Mutex
	closed    bool     // GUARDED_BY(mu)
	chunks    []*chunk // sorted by start, disjoint, all ending at or before next; GUARDED_BY(mu)
	streaming bool     // a sequential stream is being prefetched; GUARDED_BY(mu)
	window    int64    // bytes to have requested beyond frontier; GUARDED_BY(mu)
	frontier  int64    // end of the furthest read of the current run; GUARDED_BY(mu)
	next      int64    // where the next prefetch GET starts; GUARDED_BY(mu)
	inflight  int      // prefetch GETs running; GUARDED_BY(mu)
	behind    int      // reads far behind the stream since it last advanced; GUARDED_BY(mu)
}

// NewReader returns a reader of the object key whose ETag (as the store quotes it) is etag
// and whose size is size. It does no I/O until the first read. Every GET it sends carries
// etag as If-Match, so a read never mixes two versions; an empty etag disables the check.
func NewReader(cfg Config, key, etag string, size int64) *Reader {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.Stats != nil {
		cfg.Stats.Readers.Add(1)
	}
	return &Reader{
		cfg:       cfg,
		key:       key,
		etag:      etag,
		size:      size,
		maxWindow: max(cfg.InitialWindow, min(cfg.MaxWindow, int64(cfg.MaxInFlight)*cfg.PartSize)),
		ctx:       ctx,
		cancel:    cancel,
	}
}

// Size returns the object size the reader was opened with.
func (r *Reader) Size() int64 { return r.size }

// ReadAt reads len(dst) bytes at off, following io.ReaderAt: n < len(dst) only with an error,
// which is io.EOF when the read reached the end of the object. A store error (wrapping e.g.
// s3.ErrPreconditionFailed when the object changed) goes to the reads that need those bytes.
// ctx bounds this call's wait; prefetch GETs shared with other reads go on regardless.
func (r *Reader) ReadAt(ctx context.Context, dst []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %q: negative offset %d", r.key, off)
	}
	if len(dst) == 0 {
		return 0, nil
	}
	if off >= r.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(dst)), r.size)
	segs, err := r.plan(off, end)
	if err != nil {
		return 0, err
	}
	n, err := r.serve(ctx, dst[:end-off], off, segs)
	if err == nil && n < len(dst) {
		err = io.EOF
	}
	return n, err
}

// Close cancels the prefetch GETs and waits for them, so no goroutine outlives it, and
// releases the reader's memory (a part a concurrent ReadAt is still copying from is released
// when that copy ends). Reads after Close fail with ErrClosed. Close is idempotent.
func (r *Reader) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.dropAll()
	r.setWindow(0)
	if r.cfg.Stats != nil {
		r.cfg.Stats.Readers.Add(-1)
	}
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// segment is one piece of a read: from a chunk, or (c == nil) fetched straight into the
// caller's buffer.
type segment struct {
	c        *chunk // pinned by plan, unpinned by serve
	off, end int64
}

// plan classifies the read, moves the prefetch window accordingly and returns where each
// byte of [off, end) will come from.
// LOCKS_EXCLUDED(r.mu)
func (r *Reader) plan(off, end int64) ([]segment, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	switch {
	case r.streaming && off >= r.frontier-r.cfg.tune.keepBehind && off <= r.frontier+max(r.window, r.cfg.tune.aheadSlack):
		r.advance(off, end)
	case r.buffered(off):
		// A backward seek into what is still held: reuse it, leave the stream alone.
		if !r.streaming {
			r.startStream(off, end)
		}
	case r.streaming && off < r.frontier && r.behind+1 < r.cfg.tune.rewindReads:
		// Far behind: a read the kernel sent long ago, or the start of a rewind. Dropping a
		// full window for a straggler would cost far more than one small direct GET.
		r.behind++
	case !r.streaming && off >= r.frontier-r.cfg.tune.seqSlack && off <= r.next+r.cfg.tune.seqSlack:
		r.startStream(off, end)
	default:
		r.seek(off, end)
	}
	return r.segments(off, end), nil
}

// serve fills dst (the bytes [off, off+len(dst))) segment by segment, and unpins every
// segment whatever happens.
// LOCKS_EXCLUDED(r.mu)
func (r *Reader) serve(ctx context.Context, dst []byte, off int64, segs []segment) (n int, err error) {
	defer func() {
		r.mu.Lock()
		for _, s := range segs {
			if s.c != nil {
				r.unref(s.c)
			}
		}
		r.mu.Unlock()
	}()
	for _, s := range segs {
		part := dst[s.off-off : s.end-off]
		if s.c != nil {
			err = r.copyFrom(ctx, s.c, part, s.off)
		} else {
			err = r.direct(ctx, part, s.off)
		}
		if err != nil {
			return n, err
		}
		n += len(part)
	}
	return n, nil
}

// copyFrom copies [off, off+len(dst)) out of c once c holds it. If c was dropped before it
// got there (another read seeked away), the rest is fetched directly.
// LOCKS_EXCLUDED(r.mu)
func (r *Reader) copyFrom(ctx context.Context, c *chunk, dst []byte, off int64) error {
	end := off + int64(len(dst))
	for {
		r.mu.Lock()
		have := c.start + c.filled
		buf := c.buf
		if have >= end {
			r.mu.Unlock()
			// buf[:filled] is never written again, and the pin keeps its memory accounted.
			copy(dst, buf[off-c.start:end-c.start])
			return nil
		}
		if c.err != nil {
			r.mu.Unlock()
			return c.err
		}
		if c.dropped {
			r.mu.Unlock()
			if have > off {
				copy(dst, buf[off-c.start:have-c.start])
				dst, off = dst[have-off:], have
			}
			return r.direct(ctx, dst, off)
		}
		if c.wake == nil {
			c.wake = make(chan struct{})
		}
		wake := c.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.ctx.Done():
			return ErrClosed
		}
	}
}
