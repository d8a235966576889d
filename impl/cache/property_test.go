package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// expect is the Store contract for a Get of [off, off+n) of data: the bytes, or whether
// the range is invalid.
func expect(data []byte, off, n int64) ([]byte, bool) {
	size := int64(len(data))
	if (size > 0 && off >= size) || (size == 0 && off > 0) {
		return nil, false
	}
	end := size
	if n >= 0 {
		end = min(size, off+n)
	}
	return data[off:end], true
}

// TestRangesProperty: whatever the object size, block size, cache limit and ranges (cold,
// warm, partly evicted), a read through a disk cache, a shared cache, or a disk cache over
// a shared one returns exactly what the store would.
func TestRangesProperty(t *testing.T) {
	srv := startServer(t)
	src, blocks := sdkStore(t, srv, "b"), sdkStore(t, srv, "blocks")
	var seq atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		bs := rapid.SampledFrom([]int64{1, 7, 512, 4 * KiB}).Draw(rt, "blockSize")
		size := rapid.OneOf(
			rapid.SampledFrom([]int64{0, 1, bs - 1, bs, bs + 1, 2 * bs}),
			rapid.Int64Range(0, 12*bs),
		).Draw(rt, "size")
		data := randomBytes(int(size), rapid.Int64().Draw(rt, "seed"))
		key := fmt.Sprintf("p/%d", seq.Add(1))
		etag := put(t, src, key, data)
		// Another version, so that a block of it served for this one would show.
		put(t, src, key+"-other", randomBytes(int(size)+1, 0))

		dir, err := os.MkdirTemp(t.TempDir(), "")
		require.NoError(rt, err)
		maxBlocks := rapid.SampledFrom([]int64{1, 3, 1000}).Draw(rt, "maxBlocks")
		counted := s3.NewFaults(src)
		var st s3.Store
		var closers []func() error
		mode := rapid.SampledFrom([]string{"disk", "shared", "disk+shared"}).Draw(rt, "mode")
		publish := rapid.IntRange(1, int(bs)+1).Draw(rt, "publishEvery")
		if mode != "disk" {
			sc := NewShared(counted, blocks, SharedConfig{BlockSize: bs})
			sc.eng.publish = publish
			st, closers = sc, append(closers, sc.Close)
		} else {
			st = counted
		}
		if mode != "shared" {
			dc, err := NewDisk(st, DiskConfig{Dir: dir, MaxSize: maxBlocks * (bs + 200), BlockSize: bs})
			require.NoError(rt, err)
			dc.eng.publish = publish
			st, closers = dc, append([]func() error{dc.Close}, closers...)
		}
		defer func() {
			for _, c := range closers {
				require.NoError(rt, c())
			}
		}()

		for i := rapid.IntRange(1, 6).Draw(rt, "reads"); i > 0; i-- {
			off := rapid.Int64Range(0, size+bs+1).Draw(rt, "off")
			n := rapid.OneOf(rapid.Just(int64(-1)), rapid.Int64Range(1, 4*bs+2)).Draw(rt, "len")
			want, ok := expect(data, off, n)
			for pass := 0; pass < 2; pass++ {
				before := counted.Calls("Get")
				got, _, err := read(st, key, off, n, etag)
				settle(st)
				if !ok {
					require.ErrorIs(rt, err, s3.ErrInvalidRange, "off %d len %d", off, n)
					continue
				}
				require.NoError(rt, err, "off %d len %d", off, n)
				require.True(rt, bytes.Equal(want, got), "off %d len %d: %d bytes, want %d", off, n, len(got), len(want))
				if pass == 1 && maxBlocks == 1000 && len(want) > 0 {
					require.Equal(rt, before, counted.Calls("Get"), "a re-read goes to the cache")
				}
			}
		}
	})
}

// TestConcurrentRandomReadsUnderEviction: many Gets of random ranges of a few objects at
// once, through a cache small enough to evict all the time, all return the right bytes.
func TestConcurrentRandomReadsUnderEviction(t *testing.T) {
	srv := startServer(t)
	src := s3.NewThrottled(sdkStore(t, srv, "b"), 0, time.Millisecond)
	const bs = 4 * KiB
	var datas [][]byte
	var etags []string
	for i := 0; i < 4; i++ {
		d := randomBytes(int(10*bs+int64(i)*1000), int64(i))
		datas = append(datas, d)
		etags = append(etags, put(t, src, fmt.Sprintf("c%d", i), d))
	}
	c, inner := newDisk(t, src, DiskConfig{MaxSize: 12 * (bs + 200), BlockSize: bs})
	c.eng.publish = 1000 // partial blocks shared between Gets
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < 40; i++ {
				o := rnd.Intn(len(datas))
				off := rnd.Int63n(int64(len(datas[o])))
				n := rnd.Int63n(3*bs) + 1
				ctx, cancel := context.WithCancel(context.Background())
				rc, _, err := c.Get(ctx, fmt.Sprintf("c%d", o), off, n, etags[o])
				if err != nil {
					t.Error(err)
					cancel()
					return
				}
				if rnd.Intn(8) == 0 { // some readers give up half way
					_, _ = io.ReadFull(rc, make([]byte, n/2))
					cancel()
					rc.Close()
					continue
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				cancel()
				want, _ := expect(datas[o], off, n)
				if err != nil || !bytes.Equal(want, got) {
					t.Errorf("c%d [%d,+%d): %v, %d bytes, want %d", o, off, n, err, len(got), len(want))
					return
				}
			}
		}()
	}
	wg.Wait()
	settle(c)
	st := c.Stats()
	t.Logf("%+v, %d GETs", st, inner.Calls("Get"))
	require.LessOrEqual(t, st.Bytes, st.MaxBytes)
	total, _ := dirBytes(t, c.disk.dir[:len(c.disk.dir)-len(blocksDir)])
	require.Equal(t, st.Bytes, total)
	require.Positive(t, st.Evictions)
	require.False(t, errors.Is(nil, s3.ErrInvalidRange))
}
