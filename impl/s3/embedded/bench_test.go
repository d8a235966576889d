package embedded_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
)

// BenchmarkParallelRangedGet reads one 64 MiB object as 8 MiB ranges, 8 at a time, the
// way the file system's prefetcher will. b.SetBytes makes the result a throughput.
func BenchmarkParallelRangedGet(b *testing.B) {
	for _, mode := range []string{"memory", "bolt"} {
		b.Run(mode, func(b *testing.B) {
			dir := ""
			if mode == "bolt" {
				dir = b.TempDir()
			}
			srv, err := embedded.Start(embedded.Options{Dir: dir, Buckets: []string{"bkt"}})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			st, err := s3.NewSDKStore(context.Background(), s3.Config{
				Bucket: "bkt", EndpointURL: srv.URL(), ForcePathStyle: true, StaticCredentials: embedded.Credentials,
			})
			if err != nil {
				b.Fatal(err)
			}
			const size, part = 64 << 20, 8 << 20
			data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
			if _, err := st.Put(context.Background(), "big", bytes.NewReader(data), size, s3.WriteOptions{}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var wg sync.WaitGroup
				for off := int64(0); off < size; off += part {
					wg.Add(1)
					go func(off int64) {
						defer wg.Done()
						rc, _, err := st.Get(context.Background(), "big", off, part, "")
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, rc)
						rc.Close()
					}(off)
				}
				wg.Wait()
			}
		})
	}
}
