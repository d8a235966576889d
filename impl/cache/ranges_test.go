package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// TestEdgeRangesMatchTheStore compares every edge of the Get contract between the cache
// (cold and warm) and the store itself: bytes, error class and size.
func TestEdgeRangesMatchTheStore(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	const bs = 4 * KiB
	for _, size := range []int{0, 1, bs - 1, bs, bs + 1, 3 * bs} {
		key := fmt.Sprintf("obj-%d", size)
		data := randomBytes(size, int64(size))
		etag := put(t, src, key, data)
		c, _ := newDisk(t, src, DiskConfig{MaxSize: MiB, BlockSize: bs})
		var offs []int64
		for _, o := range []int{0, 1, size - 1, size, size + 1, bs - 1, bs, bs + 1, 5 * bs} {
			if o >= 0 {
				offs = append(offs, int64(o))
			}
		}
		for pass := 0; pass < 2; pass++ {
			for _, off := range offs {
				for _, n := range []int64{-1, 0, 1, 2, bs - 1, bs, bs + 1, 10 * bs} {
					want, winfo, werr := read(src, key, off, n, etag)
					got, ginfo, gerr := read(c, key, off, n, etag)
					what := fmt.Sprintf("size %d off %d len %d pass %d: store %v, cache %v", size, off, n, pass, werr, gerr)
					require.Equal(t, errors.Is(werr, s3.ErrInvalidRange), errors.Is(gerr, s3.ErrInvalidRange), what)
					require.Equal(t, werr == nil, gerr == nil, what)
					require.Equal(t, want, got, what)
					if werr == nil {
						require.Equal(t, winfo.Size, ginfo.Size, what)
						require.Equal(t, winfo.ETag, ginfo.ETag, what)
					}
				}
			}
		}
	}
}

// bareStore serves one object and says neither its size nor (if etag is empty) its ETag,
// and ignores If-Match: the least an S3-compatible store may do.
type bareStore struct {
	s3.Store
	data []byte
	etag string
}

func (s *bareStore) Bucket() string { return "bare" }

func (s *bareStore) Get(_ context.Context, key string, off, length int64, _ string) (io.ReadCloser, s3.ObjectInfo, error) {
	want, ok := expect(s.data, off, length)
	if !ok {
		return nil, s3.ObjectInfo{}, fmt.Errorf("bare %q: %w", key, s3.ErrInvalidRange)
	}
	return io.NopCloser(bytes.NewReader(want)), s3.ObjectInfo{Key: key, ETag: s.etag}, nil
}

func TestStoreWithoutSizeOrIfMatch(t *testing.T) {
	const bs = 16
	for _, size := range []int{0, 1, bs - 1, bs, 2 * bs, 2*bs + 1} {
		data := randomBytes(size, int64(size))
		c, _ := newDisk(t, &bareStore{data: data}, DiskConfig{MaxSize: MiB, BlockSize: bs})
		for pass := 0; pass < 2; pass++ {
			for off := int64(0); off <= int64(size)+bs; off++ {
				for _, n := range []int64{-1, 1, bs - 1, bs, 3 * bs} {
					want, ok := expect(data, off, n)
					got, _, err := read(c, "k", off, n, `"e"`)
					settle(c)
					if !ok {
						require.ErrorIs(t, err, s3.ErrInvalidRange, "size %d off %d len %d", size, off, n)
						continue
					}
					require.NoError(t, err, "size %d off %d len %d", size, off, n)
					require.Equal(t, want, got, "size %d off %d len %d", size, off, n)
				}
			}
		}
	}

	// A store that ignores If-Match and answers with another version is caught.
	c, _ := newDisk(t, &bareStore{data: []byte("new version"), etag: `"new"`}, DiskConfig{MaxSize: MiB, BlockSize: bs})
	_, _, err := read(c, "k", 0, -1, `"old"`)
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
	settle(c)
	require.Zero(t, c.Stats().Blocks)
}
