package cache

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
)

// sharedMount is one "mount" of the source bucket with a shared cache in "blocks": its own
// clients, and counters on both buckets.
func sharedMount(t *testing.T, srv *embedded.Server, bs int64) (*SharedCache, *s3.Faults, *s3.Faults) {
	src := s3.NewFaults(sdkStore(t, srv, "b"))
	blocks := s3.NewFaults(sdkStore(t, srv, "blocks"))
	c := NewShared(src, blocks, SharedConfig{BlockSize: bs})
	t.Cleanup(func() { _ = c.Close() })
	return c, src, blocks
}

func TestSharedCacheServesOtherMounts(t *testing.T) {
	srv := startServer(t)
	data := randomBytes(200*KiB+3, 10)
	etag := put(t, sdkStore(t, srv, "b"), "obj", data)
	const bs = 64 * KiB

	m1, src1, _ := sharedMount(t, srv, bs)
	require.Equal(t, data, mustRead(t, m1, "obj", 0, -1, etag))
	require.Equal(t, 1, src1.Calls("Get"))
	page, err := sdkStore(t, srv, "blocks").List(context.Background(), s3.ListInput{Prefix: SharedPrefix})
	require.NoError(t, err)
	require.Len(t, page.Objects, 4, "one object per block")

	m2, src2, blocks2 := sharedMount(t, srv, bs)
	require.Equal(t, data[1000:150_000], mustRead(t, m2, "obj", 1000, 149_000, etag))
	require.Equal(t, data[len(data)-3:], mustRead(t, m2, "obj", int64(len(data))-3, 10, etag))
	require.Zero(t, src2.Calls("Get"), "the second mount reads only the blocks bucket")
	require.Equal(t, 4, blocks2.Calls("Get"))
	require.Equal(t, int64(4), m2.Stats().Hits)

	// Another block size is another cache.
	m3, src3, _ := sharedMount(t, srv, 32*KiB)
	require.Equal(t, data[:10], mustRead(t, m3, "obj", 0, 10, etag))
	require.Equal(t, 1, src3.Calls("Get"))

	// Unversioned reads are not cached.
	require.Equal(t, data[:10], mustRead(t, m2, "obj", 0, 10, ""))
	require.Equal(t, 1, src2.Calls("Get"))
}

func TestSharedCorruptBlockIsIgnoredAndOverwritten(t *testing.T) {
	srv := startServer(t)
	data := randomBytes(100*KiB, 11)
	etag := put(t, sdkStore(t, srv, "b"), "obj", data)
	const bs = 64 * KiB
	m1, _, _ := sharedMount(t, srv, bs)
	mustRead(t, m1, "obj", 0, -1, etag)

	name := SharedPrefix + m1.objs.name(blockID{key: "obj", etag: etag, index: 0})
	blocks := sdkStore(t, srv, "blocks")
	_, err := blocks.Head(context.Background(), name)
	require.NoError(t, err, "the block is stored under its hash")
	for _, bad := range [][]byte{[]byte("garbage"), nil, bytes.Repeat([]byte{0}, 70*KiB)} {
		put(t, blocks, name, bad)
		m2, src2, _ := sharedMount(t, srv, bs)
		require.Equal(t, data, mustRead(t, m2, "obj", 0, -1, etag))
		require.Equal(t, 1, src2.Calls("Get"), "the bad block is fetched from the source")
		require.Equal(t, int64(1), m2.Stats().Corrupt)

		m3, src3, _ := sharedMount(t, srv, bs)
		require.Equal(t, data, mustRead(t, m3, "obj", 0, -1, etag))
		require.Zero(t, src3.Calls("Get"), "and overwritten with a good one")
	}
}

// TestDiskOverShared: a local cache in front of the shared one. The second mount's disk
// cache fills from the shared cache, then serves without any GET.
func TestDiskOverShared(t *testing.T) {
	srv := startServer(t)
	data := randomBytes(300*KiB, 12)
	etag := put(t, sdkStore(t, srv, "b"), "obj", data)
	mount := func() (*DiskCache, *s3.Faults, *s3.Faults) {
		shared, src, blocks := sharedMount(t, srv, 64*KiB)
		c, err := NewDisk(shared, DiskConfig{Dir: t.TempDir(), MaxSize: 4 * MiB, BlockSize: 16 * KiB})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c, src, blocks
	}
	d1, src1, _ := mount()
	require.Equal(t, data, mustRead(t, d1, "obj", 0, -1, etag))
	require.Equal(t, 1, src1.Calls("Get"), "one run of missing disk blocks, one run of missing shared blocks")

	d2, src2, blocks2 := mount()
	require.Equal(t, data[5000:200_000], mustRead(t, d2, "obj", 5000, 195_000, etag))
	require.Zero(t, src2.Calls("Get"))
	fromShared := blocks2.Calls("Get")
	require.Positive(t, fromShared)
	require.Equal(t, data[5000:200_000], mustRead(t, d2, "obj", 5000, 195_000, etag))
	require.Equal(t, fromShared, blocks2.Calls("Get"), "the disk cache now has it")
}
