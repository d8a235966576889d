// Package fetchahead owns reading small objects whole before a program asks for their bytes.
// A program that reads a directory's files one after another (cp -r, tar, rsync, a training
// loader) pays a GET round trip per file, in series; fetched ahead, several at once, the
// files are in memory when they are opened. The file system decides what to fetch (impl/streamfs:
// the file being opened, and the next files of a directory read in listing order); this
// package fetches each object whole at the version named (If-Match), holds the bodies within
// a byte limit and the mount's memory budget, hands each to the first open of that version,
// and drops what nobody opened.
//
// It knows nothing of paths, inodes or FUSE. A fetch that fails, is cut short or finds another
// version is dropped quietly: the open then reads the object as it would have anyway.
package fetchahead

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// Defaults for zero Config fields.
const (
	DefaultMaxBytes = 32 << 20
	DefaultParallel = 8
	DefaultKeep     = 30 * time.Second
	fetchTimeout    = time.Minute
)

// Config configures a Cache.
type Config struct {
	Store  s3.Store
	Budget *memory.Budget // nil: only MaxBytes bounds the bodies
	// MaxBytes bounds the bodies in memory: fetched or being fetched, and taken by an open
	// that has not released them. Past it, Fetch refuses, and opens read as they would
	// without this package.
	MaxBytes int64
	// Parallel is the most GETs running at once for files not yet opened; files being
	// opened have as many slots again of their own, so they never wait behind those.
	Parallel int
	// Keep is how long a body nobody took is held.
	Keep time.Duration
	// Clock is the clock (default the wall clock).
	Clock clock.Clock
}

// Cache holds the bodies fetched ahead. Its methods are safe for concurrent use.
type Cache struct {
	cfg         Config
	slots       chan struct{} // fetches ahead of opens
	urgentSlots chan struct{} // fetches an open waits for
	ctx         context.Context
	stop        context.CancelFunc

	mu     sync.Mutex
	bodies map[string]*body // GUARDED_BY(mu): by key
	held   int64            // GUARDED_BY(mu): bytes of the bodies in the map
	inUse  int64            // GUARDED_BY(mu): held, plus bodies taken and not released
	closed bool             // GUARDED_BY(mu)
	stats  Stats            // GUARDED_BY(mu)
}

// Stats counts what the cache did, for tests and metrics.
type Stats struct {
	Fetched int64 // bodies fetched whole
	Taken   int64 // bodies handed to an open
	Dropped int64 // bodies dropped unread (expired, evicted, failed, another version)
}

// body is one object being fetched or fetched. etag, size and at are constant; data and err
// are written before done is closed and read only after.
type body struct {
	etag   string
	size   int64
	at     time.Time
	done   chan struct{}
	urgent chan struct{} // closed when an open waits for the body
	data   []byte
	err    error
	// urged: urgent is closed. GUARDED_BY(Cache.mu)
	urged bool
}

// New returns an empty cache.
func New(cfg Config) *Cache {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &Cache{cfg: cfg, slots: make(chan struct{}, cfg.Parallel), urgentSlots: make(chan struct{}, cfg.Parallel),
		ctx: ctx, stop: stop, bodies: map[string]*body{}}
	go c.expireLoop()
	return c
}

// expireLoop drops the bodies nobody took in time, so that a scan that stopped early does not
// keep its bodies' memory.
func (c *Cache) expireLoop() {
	clock.Every(c.ctx, c.cfg.Clock, c.cfg.Keep/2, func(now time.Time) {
		c.mu.Lock()
		c.expireLocked(now)
		c.mu.Unlock()
	})
}

// Fetch starts fetching key at version etag, size bytes, unless it is held or being fetched
// already, or there is no room for it (in MaxBytes after dropping expired bodies, and in the
// memory budget without waiting). urgent says an open will wait for it: it does not queue
// behind the fetches ahead. It reports whether the body is or will be held.
func (c *Cache) Fetch(key, etag string, size int64, urgent bool) bool {
	if etag == "" || size < 0 || size > c.cfg.MaxBytes {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	now := c.cfg.Clock.Now()
	if b := c.bodies[key]; b != nil {
		if b.etag == etag {
			if urgent {
				c.urgeLocked(b)
			}
			return true
		}
		c.dropLocked(key, b)
	}
	if c.inUse+size > c.cfg.MaxBytes {
		c.expireLocked(now)
	}
	if c.inUse+size > c.cfg.MaxBytes || c.cfg.Budget != nil && !c.cfg.Budget.TryAcquire(size) {
		return false
	}
	b := &body{etag: etag, size: size, at: now, done: make(chan struct{}), urgent: make(chan struct{})}
	if urgent {
		c.urgeLocked(b)
	}
	c.bodies[key] = b
	c.held += size
	c.inUse += size
	go c.fetch(key, b)
	return true
}

// urgeLocked lets b's fetch take an open's slot if it has none yet.
// LOCKS_REQUIRED(c.mu)
func (c *Cache) urgeLocked(b *body) {
	if !b.urged {
		b.urged = true
		close(b.urgent)
	}
}

// slot waits for a slot for b's GET: an ahead slot, or an open's once b is urgent. It
// returns the function that frees it, or nil if the cache closed.
func (c *Cache) slot(b *body) func() {
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }
	case <-b.urgent:
	case <-c.ctx.Done():
		return nil
	}
	select {
	case c.urgentSlots <- struct{}{}:
		return func() { <-c.urgentSlots }
	case c.slots <- struct{}{}:
		return func() { <-c.slots }
	case <-c.ctx.Done():
		return nil
	}
}

// fetch reads the whole object into b.
func (c *Cache) fetch(key string, b *body) {
	defer close(b.done)
	free := c.slot(b)
	if free == nil {
		b.err = c.ctx.Err()
		return
	}
	defer free()
	ctx, cancel := context.WithTimeout(c.ctx, fetchTimeout)
	defer cancel()
	if b.size == 0 {
		b.data = []byte{}
		return
	}
	rc, info, err := c.cfg.Store.Get(ctx, key, 0, b.size, b.etag)
	if err != nil {
		b.err = err
		return
	}
	defer rc.Close()
	if info.Size != 0 && info.Size != b.size {
		b.err = io.ErrUnexpectedEOF // another version, whatever If-Match said
		return
	}
	data := make([]byte, b.size)
	if _, err := io.ReadFull(rc, data); err != nil {
		b.err = err // cut short: the open reads the object itself
		return
	}
	b.data = data
	c.mu.Lock()
	c.stats.Fetched++
	c.mu.Unlock()
}

// Take returns the body of key at version etag, waiting for its fetch if it is running, and
// forgets it: each body serves one open. ok is false if there is none (or its fetch failed).
// The caller owns the bytes and must call release when done with them (it returns their
// memory to the budget).
func (c *Cache) Take(ctx context.Context, key, etag string) (data []byte, release func(), ok bool) {
	c.mu.Lock()
	b := c.bodies[key]
	if b == nil || b.etag != etag {
		c.mu.Unlock()
		return nil, nil, false
	}
	delete(c.bodies, key)
	c.held -= b.size
	c.urgeLocked(b)
	c.mu.Unlock()
	select {
	case <-b.done:
	case <-ctx.Done():
		go func() { <-b.done; c.settle(b, false) }()
		return nil, nil, false
	}
	if b.err != nil {
		c.settle(b, false)
		return nil, nil, false
	}
	c.mu.Lock()
	c.stats.Taken++
	c.mu.Unlock()
	var once sync.Once
	return b.data, func() { once.Do(func() { c.settle(b, true) }) }, true
}

// settle returns a body's bytes to the memory budget once nobody holds them: taken and
// released, or dropped (after its fetch ended).
func (c *Cache) settle(b *body, taken bool) {
	c.mu.Lock()
	c.inUse -= b.size
	if !taken {
		c.stats.Dropped++
	}
	c.mu.Unlock()
	if c.cfg.Budget != nil {
		c.cfg.Budget.Release(b.size)
	}
}

// dropLocked forgets a body nobody took; its bytes are returned once its fetch ends.
// LOCKS_REQUIRED(c.mu)
func (c *Cache) dropLocked(key string, b *body) {
	delete(c.bodies, key)
	c.held -= b.size
	select {
	case <-b.done:
		c.inUse -= b.size
		c.stats.Dropped++
		if c.cfg.Budget != nil {
			c.cfg.Budget.Release(b.size) // lock order: Cache.mu < the budget's
		}
	default:
		go func() { <-b.done; c.settle(b, false) }()
	}
}

// expireLocked drops the bodies held longer than Keep.
// LOCKS_REQUIRED(c.mu)
func (c *Cache) expireLocked(now time.Time) {
	for k, b := range c.bodies {
		if now.Sub(b.at) > c.cfg.Keep {
			c.dropLocked(k, b)
		}
	}
}

// Drop forgets the body of key at version etag if nobody took it: an open that fetched its
// file whole and closed it unread.
func (c *Cache) Drop(key, etag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.bodies[key]; b != nil && b.etag == etag {
		c.dropLocked(key, b)
	}
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Held returns the bytes of the bodies held or being fetched and not yet taken.
func (c *Cache) Held() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

// InUse returns the bytes of the bodies in memory: held, and taken but not released. It is
// at most MaxBytes.
func (c *Cache) InUse() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inUse
}

// Close stops the fetches and drops every body not taken.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	for k, b := range c.bodies {
		c.dropLocked(k, b)
	}
	c.mu.Unlock()
	c.stop()
}
