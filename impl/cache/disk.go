package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// DiskConfig configures NewDisk.
type DiskConfig struct {
	// Dir holds the cache (--cache). It is created if missing. The cache owns the
	// subdirectory "blocks-v1" and the file "mount-s3-cache.lock" in it and touches
	// nothing else there.
	Dir string
	// MaxSize bounds the bytes of block files, headers included (--max-cache-size). 0 means
	// DefaultMaxShare of the free space of Dir's file system, at most DefaultMaxSizeCap.
	MaxSize int64
	// BlockSize is the unit of caching and of GETs for missing data. 0 means
	// DefaultBlockSize. Blocks cached with another block size are not used (nor evicted
	// before they are the least recently used).
	BlockSize int64
}

const (
	// DefaultMaxShare: a zero MaxSize uses 1/DefaultMaxShare (5%) of the free space.
	DefaultMaxShare = 20
	// DefaultMaxSizeCap caps the default MaxSize, so a huge empty disk is not filled.
	DefaultMaxSizeCap = 16 << 30

	blocksDir = "blocks-v1"           // bump with the file format
	lockFile  = "mount-s3-cache.lock" // held by the one DiskCache using Dir
)

// DiskCache is an s3.Store that keeps the blocks of versioned reads in a local directory;
// see the package comment. Methods other than Get go to the inner store unchanged: writes
// need not invalidate anything, because a block is keyed by the ETag of what it holds.
type DiskCache struct {
	s3.Store // the inner store: every method but Get
	eng      *engine
	disk     *diskStore
	unlock   func() error

	closeOnce sync.Once
	closeErr  error
}

var _ s3.Store = (*DiskCache)(nil)

// NewDisk returns a cache of inner's data in cfg.Dir. Blocks already there (from an earlier
// mount) are indexed and served; leftovers of interrupted writes are removed. It fails if
// another DiskCache (in this or another process) is using the directory, since two
// indexes of one directory would evict each other's blocks behind each other's back.
func NewDisk(inner s3.Store, cfg DiskConfig) (*DiskCache, error) {
	if cfg.Dir == "" {
		return nil, errors.New("cache: no directory given")
	}
	if cfg.MaxSize < 0 || cfg.BlockSize < 0 || cfg.BlockSize > 1<<30 {
		return nil, fmt.Errorf("cache: bad size (max %d, block %d)", cfg.MaxSize, cfg.BlockSize)
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if cfg.MaxSize == 0 {
		free, err := freeSpace(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("cache: free space of %s: %w", cfg.Dir, err)
		}
		cfg.MaxSize = min(free/DefaultMaxShare, DefaultMaxSizeCap)
	}
	unlock, err := lockDir(filepath.Join(cfg.Dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("cache: %s: %w", cfg.Dir, err)
	}
	c := codec{bucket: inner.Bucket(), bs: cfg.BlockSize}
	d := newDiskStore(c, filepath.Join(cfg.Dir, blocksDir), cfg.MaxSize)
	if err := d.scan(); err != nil {
		_ = unlock()
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &DiskCache{Store: inner, eng: newEngine(inner, d, c), disk: d, unlock: unlock}, nil
}

// Get implements s3.Store; see the package comment for what is cached.
func (c *DiskCache) Get(ctx context.Context, key string, offset, length int64, ifMatch string) (io.ReadCloser, s3.ObjectInfo, error) {
	return c.eng.get(ctx, key, offset, length, ifMatch)
}

// Close waits for blocks being written and releases the directory. Gets after Close still
// work but must not be made (the directory is no longer ours).
func (c *DiskCache) Close() error {
	c.closeOnce.Do(func() {
		c.eng.wg.Wait()
		c.closeErr = c.unlock()
	})
	return c.closeErr
}

// Stats describes a cache's activity since it was created.
type Stats struct {
	Hits      int64 // blocks served from the cache
	Misses    int64 // blocks fetched from the inner store
	Corrupt   int64 // blocks that failed verification: dropped, never served
	Evictions int64 // blocks evicted to stay under MaxBytes (disk only)
	Blocks    int64 // blocks held now (disk only)
	Bytes     int64 // bytes of block files now, headers included (disk only)
	MaxBytes  int64 // the size limit in force (disk only)
}

// Stats returns the cache's counters.
func (c *DiskCache) Stats() Stats {
	s := c.disk.stats()
	s.Hits, s.Misses = c.eng.hits.Load(), c.eng.misses.Load()
	return s
}
