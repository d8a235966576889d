package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// SharedPrefix is where a shared cache keeps its blocks in the blocks bucket. A lifecycle
// rule on it (expire after N days) is what bounds the shared cache: it never deletes.
const SharedPrefix = "mount-s3-cache/v1/"

// SharedConfig configures NewShared.
type SharedConfig struct {
	// BlockSize is the unit of caching. 0 means DefaultBlockSize. Mounts share blocks only
	// if they use the same block size (it is part of a block's name).
	BlockSize int64
}

// SharedCache is an s3.Store that keeps the blocks of versioned reads as objects in a
// second bucket (--cache-xz: an S3 Express One Zone bucket near the compute, or any
// S3-compatible store), so that every mount using that bucket shares them. Methods other
// than Get go to the inner store unchanged.
//
// A local cache in front of it is NewDisk(NewShared(inner, blocks, ...), ...): the disk
// cache fetches its missing blocks through the shared one.
type SharedCache struct {
	s3.Store // the inner store: every method but Get
	eng      *engine
	objs     *objectStore
}

var _ s3.Store = (*SharedCache)(nil)

// NewShared returns a cache of inner's data in the bucket of blocks. It does no I/O.
func NewShared(inner, blocks s3.Store, cfg SharedConfig) *SharedCache {
	bs := cfg.BlockSize
	if bs <= 0 || bs > 1<<30 {
		bs = DefaultBlockSize
	}
	c := codec{bucket: inner.Bucket(), bs: bs}
	o := &objectStore{codec: c, blocks: blocks}
	return &SharedCache{Store: inner, eng: newEngine(inner, o, c), objs: o}
}

// Get implements s3.Store; see the package comment for what is cached.
func (c *SharedCache) Get(ctx context.Context, key string, offset, length int64, ifMatch string) (io.ReadCloser, s3.ObjectInfo, error) {
	return c.eng.get(ctx, key, offset, length, ifMatch)
}

// Close waits for blocks being uploaded to the blocks bucket.
func (c *SharedCache) Close() error {
	c.eng.wg.Wait()
	return nil
}

// Stats returns the cache's counters (Corrupt counts blocks that failed verification; the
// disk-only fields are zero).
func (c *SharedCache) Stats() Stats {
	return Stats{Hits: c.eng.hits.Load(), Misses: c.eng.misses.Load(), Corrupt: c.objs.corrupt.Load()}
}

// objectStore is the shared backend: one object per block, named by the block's hash.
type objectStore struct {
	codec
	blocks  s3.Store
	corrupt atomic.Int64
}

// mayHave implements backend. Asking would cost a request per block, so a run of missing
// blocks refetches from the source rather than probe each following block; blocks found
// are loaded one by one.
func (o *objectStore) mayHave(blockID) bool { return false }

// load implements backend. A block that fails verification is a miss; the store that
// follows the refetch overwrites it.
func (o *objectStore) load(ctx context.Context, id blockID) (block, bool) {
	rc, info, err := o.blocks.Get(ctx, SharedPrefix+o.name(id), 0, -1, "")
	if err != nil {
		return block{}, false // absent, or the blocks bucket is unwell: the source still works
	}
	defer rc.Close()
	// A block object is never larger than this; the size the store gives saves ReadAll's
	// regrowing, and a larger object is corrupt without reading it.
	limit := o.bs + fixedLen + 3*maxNameLen + trailerLen
	if info.Size <= 0 || info.Size > limit {
		o.corrupt.Add(1)
		return block{}, false
	}
	buf := make([]byte, info.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return block{}, false
	}
	blk, err := o.decode(buf, id)
	if err != nil {
		if errors.Is(err, errCorrupt) {
			o.corrupt.Add(1)
		}
		return block{}, false
	}
	return blk, true
}

// store implements backend, best effort: a failed upload only costs a later refetch.
func (o *objectStore) store(ctx context.Context, id blockID, b block) {
	file, ok := o.encodeFile(id, b)
	if !ok {
		return
	}
	_, _ = o.blocks.Put(ctx, SharedPrefix+o.name(id), bytes.NewReader(file), int64(len(file)), s3.WriteOptions{})
}
