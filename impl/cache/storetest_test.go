package cache

import (
	"testing"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/storetest"
)

// The caches are Stores in front of a Store: each passes the Store conformance suite as the
// store it wraps does, but for one allowed difference (KeepsVersions: a version the object no
// longer is may still be read from its blocks, never mixed with another's). Small blocks, so
// the suite's objects span several.

var cacheQuirks = storetest.Quirks{KeepsVersions: true}

func TestDiskCacheIsAStore(t *testing.T) {
	srv := startServer(t)
	storetest.RunQuirks(t, cacheQuirks, func(t *testing.T) s3.Store {
		c, _ := newDisk(t, sdkStore(t, srv, "b"), DiskConfig{MaxSize: 64 * MiB, BlockSize: 64 * KiB})
		return c
	})
}

func TestSharedCacheIsAStore(t *testing.T) {
	srv := startServer(t)
	storetest.RunQuirks(t, cacheQuirks, func(t *testing.T) s3.Store {
		return NewShared(sdkStore(t, srv, "b"), sdkStore(t, srv, "blocks"), SharedConfig{BlockSize: 64 * KiB})
	})
}

func TestDiskOverSharedCacheIsAStore(t *testing.T) {
	srv := startServer(t)
	storetest.RunQuirks(t, cacheQuirks, func(t *testing.T) s3.Store {
		shared := NewShared(sdkStore(t, srv, "b"), sdkStore(t, srv, "blocks"), SharedConfig{BlockSize: 64 * KiB})
		c, _ := newDisk(t, shared, DiskConfig{MaxSize: 64 * MiB, BlockSize: 64 * KiB})
		return c
	})
}
