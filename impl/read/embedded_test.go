package read

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
)

// embeddedStore starts an in-memory embedded server and returns the real SDK store on it,
// holding one object "obj" of size random bytes.
func embeddedStore(tb testing.TB, size int) (s3.Store, []byte, string) {
	tb.Helper()
	_, st := s3test.Embedded(tb, s3test.Options{Bucket: "b"})
	data := randomBytes(size, 42)
	info, err := st.Put(context.Background(), "obj", bytes.NewReader(data), int64(size), s3.WriteOptions{})
	require.NoError(tb, err)
	return st, data, info.ETag
}

// TestEmbeddedKernelStyleRead reads through the real SDK over HTTP the way the kernel does:
// 128 KiB reads from 4 goroutines in slightly shuffled order.
func TestEmbeddedKernelStyleRead(t *testing.T) {
	const size = 40 * MiB
	st, data, etag := embeddedStore(t, size)
	budget := memory.NewBudget(128 * MiB)
	r := NewReader(Config{Store: st, Budget: budget}, "obj", etag, size)
	got := readConcurrently(t, r, kernelOrder(size, 128*KiB, 8, 7), 128*KiB, 4)
	r.Close()
	require.True(t, bytes.Equal(data, got), "bytes differ")
	require.Zero(t, budget.InUse())

	// The version check reaches the real store: a reader of another etag fails.
	r = NewReader(Config{Store: st}, "obj", `"0123456789abcdef0123456789abcdef"`, size)
	defer r.Close()
	_, err := r.ReadAt(context.Background(), make([]byte, 4*KiB), 0)
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
}

// BenchmarkSequentialRead reads a 64 MiB object in 128 KiB reads over the embedded server:
// through the prefetcher (in order from one goroutine, and kernel-style from 4), and, as
// baselines, one streaming GET (what the naive handle does at best) and 8 MiB ranged GETs
// all at once (the ceiling). The "s3like" variants add 20ms to first byte and 90 MB/s per
// connection, as S3 behaves from EC2, where parallelism matters much more than on loopback.
// b.SetBytes makes each result a throughput in MB/s.
func BenchmarkSequentialRead(b *testing.B) {
	const size = 64 * MiB
	st, _, etag := embeddedStore(b, size)
	stores := []struct {
		name string
		st   s3.Store
	}{
		{"loopback", st},
		{"s3like", s3.NewThrottled(st, 90_000_000, 20*time.Millisecond)},
	}
	for _, s := range stores {
		readers := map[string]func(b *testing.B){
			"prefetch-1reader": func(b *testing.B) {
				r := NewReader(Config{Store: s.st, Budget: memory.NewBudget(512 * MiB)}, "obj", etag, size)
				defer r.Close()
				buf := make([]byte, 128*KiB)
				for off := int64(0); off < size; off += int64(len(buf)) {
					if _, err := r.ReadAt(context.Background(), buf, off); err != nil {
						b.Fatal(err)
					}
				}
			},
			"prefetch-kernel4": func(b *testing.B) {
				r := NewReader(Config{Store: s.st, Budget: memory.NewBudget(512 * MiB)}, "obj", etag, size)
				defer r.Close()
				readConcurrently(b, r, kernelOrder(size, 128*KiB, 8, 1), 128*KiB, 4)
			},
			"single-stream": func(b *testing.B) {
				body, _, err := s.st.Get(context.Background(), "obj", 0, -1, etag)
				if err != nil {
					b.Fatal(err)
				}
				defer body.Close()
				buf := make([]byte, 128*KiB)
				for {
					if _, err := io.ReadFull(body, buf); err != nil {
						break
					}
				}
			},
			"parallel-ranged-8MiB": func(b *testing.B) {
				var wg sync.WaitGroup
				for off := int64(0); off < size; off += 8 * MiB {
					wg.Add(1)
					go func() {
						defer wg.Done()
						body, _, err := s.st.Get(context.Background(), "obj", off, 8*MiB, etag)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, body)
						body.Close()
					}()
				}
				wg.Wait()
			},
		}
		for _, name := range []string{"prefetch-1reader", "prefetch-kernel4", "single-stream", "parallel-ranged-8MiB"} {
			b.Run(fmt.Sprintf("%s/%s", s.name, name), func(b *testing.B) {
				b.SetBytes(size)
				for i := 0; i < b.N; i++ {
					readers[name](b)
				}
			})
		}
	}
}
