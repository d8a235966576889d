package cache

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/memory"
	prefetch "github.com/mount-s3/mount-s3/impl/read"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// TestPrefetcherOverCache: the prefetcher reads exactly the object's bytes through a cold
// and then a warm cache, and the second reader sends no GET.
func TestPrefetcherOverCache(t *testing.T) {
	const size = 20*MiB + 12345
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	data := randomBytes(size, 15)
	etag := put(t, src, "obj", data)
	c, inner := newDisk(t, src, DiskConfig{MaxSize: 64 * MiB})
	var gets int
	for pass := 0; pass < 2; pass++ {
		r := prefetch.NewReader(prefetch.Config{Store: c, Budget: memory.NewBudget(64 * MiB)}, "obj", etag, size)
		got := make([]byte, size)
		for off := 0; off < size; off += 128 * KiB {
			_, err := r.ReadAt(context.Background(), got[off:min(size, off+128*KiB)], int64(off))
			require.NoError(t, err)
		}
		r.Close()
		require.True(t, bytes.Equal(data, got), "pass %d", pass)
		settle(c)
		if pass == 0 {
			gets = inner.Calls("Get")
			require.Positive(t, gets)
			t.Logf("cold: %d GETs for %d blocks", gets, c.Stats().Misses)
		}
	}
	require.Equal(t, gets, inner.Calls("Get"), "the second reader sent no GET")
	require.Equal(t, int64(21), c.Stats().Blocks)
}

// BenchmarkRead reads a 64 MiB object in 128 KiB reads through the real prefetcher
// (impl/read) over the embedded server: without a cache, through a cold disk cache (every
// block fetched and written; Close, which waits for the writes, is timed; each iteration in
// a new directory), and re-reading through a warm one. "s3like" adds 20ms to first byte and 90 MB/s per connection, as S3
// behaves from EC2. b.SetBytes makes each result a throughput in MB/s.
func BenchmarkRead(b *testing.B) {
	const size = 64 * MiB
	srv := startServer(b)
	src := sdkStore(b, srv, "b")
	etag := put(b, src, "obj", randomBytes(size, 1))
	readAll := func(b *testing.B, st s3.Store) {
		r := prefetch.NewReader(prefetch.Config{Store: st, Budget: memory.NewBudget(512 * MiB)}, "obj", etag, size)
		defer r.Close()
		buf := make([]byte, 128*KiB)
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := r.ReadAt(context.Background(), buf, off); err != nil {
				b.Fatal(err)
			}
		}
	}
	newCache := func(b *testing.B, inner s3.Store) (*DiskCache, string) {
		dir, err := os.MkdirTemp(b.TempDir(), "")
		if err != nil {
			b.Fatal(err)
		}
		c, err := NewDisk(inner, DiskConfig{Dir: dir, MaxSize: 256 * MiB})
		if err != nil {
			b.Fatal(err)
		}
		return c, dir
	}
	for _, s := range []struct {
		name string
		st   s3.Store
	}{
		{"loopback", src},
		{"s3like", s3.NewThrottled(src, 90_000_000, 20*time.Millisecond)},
	} {
		b.Run(s.name+"/uncached", func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				readAll(b, s.st)
			}
		})
		b.Run(s.name+"/cold-cache", func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c, dir := newCache(b, s.st)
				b.StartTimer()
				readAll(b, c)
				if err := c.Close(); err != nil {
					b.Fatal(err)
				}
				// Dirty pages of earlier iterations would otherwise pile up until the kernel
				// throttles writers: a sustained cold read is bounded by the disk's write speed.
				b.StopTimer()
				_ = os.RemoveAll(dir)
				b.StartTimer()
			}
		})
		b.Run(s.name+"/cached-reread", func(b *testing.B) {
			c, _ := newCache(b, s.st)
			defer c.Close()
			readAll(b, c)
			settle(c)
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				readAll(b, c)
			}
			b.StopTimer()
			if st := c.Stats(); st.Misses != size/DefaultBlockSize {
				b.Fatalf("re-reads fetched: %+v", st)
			}
		})
	}
}
