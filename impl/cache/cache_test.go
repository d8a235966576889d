package cache

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
)

const KiB, MiB = 1 << 10, 1 << 20

// startServer starts an in-memory embedded server with the source bucket "b" and the
// shared-cache bucket "blocks".
func startServer(tb testing.TB) *embedded.Server {
	tb.Helper()
	srv, _ := s3test.Embedded(tb, s3test.Options{Server: embedded.Options{Buckets: []string{"b", "blocks"}}})
	return srv
}

// sdkStore is the real SDK store on bucket of srv, over HTTP.
func sdkStore(tb testing.TB, srv *embedded.Server, bucket string) s3.Store {
	tb.Helper()
	return s3test.StoreAt(tb, srv.URL(), bucket, 0)
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func put(tb testing.TB, st s3.Store, key string, data []byte) string {
	tb.Helper()
	info, err := st.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), s3.WriteOptions{})
	require.NoError(tb, err)
	return info.ETag
}

// read does one Get and reads the whole body.
func read(st s3.Store, key string, off, length int64, etag string) ([]byte, s3.ObjectInfo, error) {
	rc, info, err := st.Get(context.Background(), key, off, length, etag)
	if err != nil {
		return nil, info, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return data, info, err
}

// mustRead reads and then waits until what the read fetched is stored, so that a test can
// look at (or damage) the blocks. It must not run concurrently with other reads.
func mustRead(tb testing.TB, st s3.Store, key string, off, length int64, etag string) []byte {
	tb.Helper()
	data, _, err := read(st, key, off, length, etag)
	require.NoError(tb, err, "read %q [%d,+%d)", key, off, length)
	settle(st)
	return data
}

// settle waits for the fetches (and stores) of a cache and of the caches under it.
func settle(st s3.Store) {
	for {
		switch c := st.(type) {
		case *DiskCache:
			c.eng.wg.Wait()
			st = c.Store
		case *SharedCache:
			c.eng.wg.Wait()
			st = c.Store
		case *s3.Faults:
			st = c.Store
		default:
			return
		}
	}
}

// newDisk returns a disk cache in a fresh directory over a counting wrapper of the source.
func newDisk(t *testing.T, src s3.Store, cfg DiskConfig) (*DiskCache, *s3.Faults) {
	t.Helper()
	inner := s3.NewFaults(src)
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	c, err := NewDisk(inner, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, inner
}

func TestSecondReadMakesNoGet(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	data := randomBytes(300*KiB+17, 1)
	etag := put(t, src, "obj", data)
	c, inner := newDisk(t, src, DiskConfig{MaxSize: 16 * MiB, BlockSize: 64 * KiB})

	got, info, err := read(c, "obj", 10, 200_000, etag)
	require.NoError(t, err)
	require.Equal(t, data[10:200_010], got)
	require.Equal(t, s3.ObjectInfo{Key: "obj", ETag: etag, Size: int64(len(data))}, info)
	require.Equal(t, 1, inner.Calls("Get"), "one ranged GET for the run of 4 missing blocks")

	require.Equal(t, data[10:200_010], mustRead(t, c, "obj", 10, 200_000, etag))
	require.Equal(t, data[70_000:70_001], mustRead(t, c, "obj", 70_000, 1, etag))
	require.Equal(t, 1, inner.Calls("Get"), "re-reads are served from the cache")

	// The whole object: only the block not read yet (the last, short one) is fetched.
	require.Equal(t, data, mustRead(t, c, "obj", 0, -1, etag))
	require.Equal(t, 2, inner.Calls("Get"))
	require.Equal(t, data, mustRead(t, c, "obj", 0, -1, etag))
	require.Equal(t, data[len(data)-5:], mustRead(t, c, "obj", int64(len(data))-5, 100, etag))
	require.Equal(t, 2, inner.Calls("Get"))

	// Past the end is answered from the last block's header, as the store would answer.
	_, _, err = read(c, "obj", int64(len(data)), 10, etag)
	require.ErrorIs(t, err, s3.ErrInvalidRange)
	require.Equal(t, 2, inner.Calls("Get"))

	st := c.Stats()
	require.Equal(t, int64(5), st.Misses)
	require.Equal(t, int64(5), st.Blocks)
	require.Positive(t, st.Hits)
}

func TestUnversionedGetsPassThrough(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	data := randomBytes(10*KiB, 2)
	put(t, src, "obj", data)
	c, inner := newDisk(t, src, DiskConfig{MaxSize: MiB, BlockSize: 4 * KiB})
	for i := 1; i <= 3; i++ {
		require.Equal(t, data[5:100], mustRead(t, c, "obj", 5, 95, ""))
		require.Equal(t, i, inner.Calls("Get"))
	}
	require.Zero(t, c.Stats().Blocks)
}

func TestChangedObjectIsRefetched(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	v1 := randomBytes(20*KiB, 3)
	e1 := put(t, src, "obj", v1)
	c, inner := newDisk(t, src, DiskConfig{MaxSize: MiB, BlockSize: 4 * KiB})
	require.Equal(t, v1, mustRead(t, c, "obj", 0, -1, e1))
	require.Equal(t, 1, inner.Calls("Get"))

	v2 := randomBytes(20*KiB, 4)
	e2 := put(t, src, "obj", v2)
	require.NotEqual(t, e1, e2)
	require.Equal(t, v2, mustRead(t, c, "obj", 0, -1, e2), "the new version's blocks are other blocks")
	require.Equal(t, 2, inner.Calls("Get"))

	// A reader still pinned to v1 gets v1's bytes, never a mix (If-Match's purpose); a
	// block of v1 that is not cached fails as the store would.
	require.Equal(t, v1[100:200], mustRead(t, c, "obj", 100, 100, e1))
	_, _, err := read(c, "other", 0, 10, e1)
	require.ErrorIs(t, err, s3.ErrNotFound)
	put(t, src, "x", v1)
	_, _, err = read(c, "x", 0, 10, e2)
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
}

func TestConcurrentGetsFetchOnce(t *testing.T) {
	srv := startServer(t)
	// Latency makes every Get arrive while the first one's GET is still under way.
	src := s3.NewThrottled(sdkStore(t, srv, "b"), 0, 100*time.Millisecond)
	data := randomBytes(256*KiB, 5)
	etag := put(t, src, "obj", data)
	c, inner := newDisk(t, src, DiskConfig{MaxSize: 4 * MiB, BlockSize: 64 * KiB})

	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(g%4) * 1000
			got, _, err := read(c, "obj", off, 100, etag)
			if !(assertNoErr(t, err) && bytes.Equal(data[off:off+100], got)) {
				t.Errorf("goroutine %d: wrong bytes", g)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, inner.Calls("Get"), "32 concurrent Gets of one block fetch it once")

	// Overlapping ranges over several blocks: every block is fetched at most once.
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(g) * 13 * KiB
			got, _, err := read(c, "obj", off, 70*KiB, etag)
			end := min(off+70*KiB, int64(len(data)))
			if !(assertNoErr(t, err) && bytes.Equal(data[off:end], got)) {
				t.Errorf("goroutine %d: wrong bytes", g)
			}
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, int(c.Stats().Misses), 4, "4 blocks, each fetched once")
}

func assertNoErr(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

func TestBrokenBodyIsNotCached(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	data := randomBytes(64*KiB, 6)
	etag := put(t, src, "obj", data)
	c, inner := newDisk(t, src, DiskConfig{MaxSize: MiB, BlockSize: 16 * KiB})

	inner.CutGetBodies(20 * KiB) // inside the second block
	got, _, err := read(c, "obj", 0, -1, etag)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.Equal(t, data[:16*KiB], got, "the whole first block was good and is served")
	c.eng.wg.Wait()
	require.Equal(t, int64(1), c.Stats().Blocks, "only the complete block is cached")

	inner.Clear()
	require.Equal(t, data, mustRead(t, c, "obj", 0, -1, etag))
}

// TestCanceledFetchDoesNotFailOthers: a Get that joined a fetch whose own Get went away
// fetches for itself instead of failing.
func TestCanceledFetchDoesNotFailOthers(t *testing.T) {
	srv := startServer(t)
	src := s3.NewThrottled(sdkStore(t, srv, "b"), 0, 200*time.Millisecond)
	data := randomBytes(32*KiB, 7)
	etag := put(t, src, "obj", data)
	c, _ := newDisk(t, src, DiskConfig{MaxSize: MiB, BlockSize: 16 * KiB})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Get(ctx, "obj", 0, 10, etag)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // the first Get's fetch is under way
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	require.Equal(t, data[:10], mustRead(t, c, "obj", 0, 10, etag))
	require.ErrorIs(t, <-done, context.Canceled)
}

// gated is a store whose Get bodies stop after open bytes until gate is closed.
type gated struct {
	s3.Store
	open int64
	gate chan struct{}
}

func (g *gated) Get(ctx context.Context, key string, off, length int64, ifMatch string) (io.ReadCloser, s3.ObjectInfo, error) {
	rc, info, err := g.Store.Get(ctx, key, off, length, ifMatch)
	if err != nil {
		return rc, info, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, g.open), gateReader{g.gate}, rc), rc}, info, nil
}

type gateReader struct{ gate chan struct{} }

func (r gateReader) Read([]byte) (int, error) { <-r.gate; return 0, io.EOF }

// TestBytesFlowBeforeTheBlockIsComplete: a Get returns, and its first bytes can be read,
// as soon as they arrive, not once the whole block has; with the object's size.
func TestBytesFlowBeforeTheBlockIsComplete(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	data := randomBytes(3*MiB, 13)
	etag := put(t, src, "obj", data)
	g := &gated{Store: src, open: 200 * KiB, gate: make(chan struct{})}
	c, _ := newDisk(t, g, DiskConfig{MaxSize: 16 * MiB, BlockSize: MiB})

	rc, info, err := c.Get(context.Background(), "obj", 1000, 2*MiB, etag)
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), info.Size)
	first := make([]byte, 64*KiB)
	_, err = io.ReadFull(rc, first)
	require.NoError(t, err)
	require.Equal(t, data[1000:1000+64*KiB], first)

	close(g.gate)
	rest, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, data[1000+64*KiB:1000+2*MiB], rest)
}

// TestSmallReadCachesItsWholeBlock: a Get of a few bytes returns before its block has
// arrived, and its caller cancels its context then (as the prefetcher does); the block is
// still completed and cached.
func TestSmallReadCachesItsWholeBlock(t *testing.T) {
	srv := startServer(t)
	src := s3.NewThrottled(sdkStore(t, srv, "b"), 2_000_000, 0)
	data := randomBytes(2*MiB, 14)
	etag := put(t, src, "obj", data)
	c, inner := newDisk(t, src, DiskConfig{MaxSize: 16 * MiB, BlockSize: MiB})

	ctx, cancel := context.WithCancel(context.Background())
	rc, _, err := c.Get(ctx, "obj", 100, 10, etag)
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	cancel()
	require.Equal(t, data[100:110], got)
	require.Zero(t, c.Stats().Blocks, "returned before the block was complete")

	settle(c)
	require.Equal(t, int64(1), c.Stats().Blocks)
	require.Equal(t, data[MiB-10:MiB], mustRead(t, c, "obj", MiB-10, 10, etag))
	require.Equal(t, 1, inner.Calls("Get"))
}
