package read

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/s3"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
)

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// kernelOrder returns the offsets of size/readSize reads in order, each shuffled within
// groups of spread: the order the kernel's concurrent FUSE reads reach a handle.
func kernelOrder(size, readSize int64, spread int, seed int64) []int64 {
	var offs []int64
	for off := int64(0); off < size; off += readSize {
		offs = append(offs, off)
	}
	rng := rand.New(rand.NewSource(seed))
	for i := 0; i < len(offs); i += spread {
		g := offs[i:min(i+spread, len(offs))]
		rng.Shuffle(len(g), func(a, b int) { g[a], g[b] = g[b], g[a] })
	}
	return offs
}

// readConcurrently reads the whole object with workers goroutines taking the offsets in
// order, like the kernel's FUSE threads, and returns what they read.
func readConcurrently(t testing.TB, r *Reader, offs []int64, readSize int64, workers int) []byte {
	out := make([]byte, r.Size())
	ch := make(chan int64)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := range ch {
				dst := out[off:min(off+readSize, r.Size())]
				n, err := r.ReadAt(context.Background(), dst, off)
				if err != nil && !(errors.Is(err, io.EOF) && n == len(dst)) {
					t.Errorf("ReadAt(%d, %d) = %d, %v", off, len(dst), n, err)
					failed.Store(true)
				}
			}
		}()
	}
	for _, off := range offs {
		if failed.Load() {
			break
		}
		ch <- off
	}
	close(ch)
	wg.Wait()
	return out
}

func TestSequentialReadUsesParallelGets(t *testing.T) {
	const size = 64 * MiB
	data := randomBytes(size, 1)
	fake := newFakeStore()
	fake.put("big", data, `"v1"`)
	// Per-request bandwidth like S3: only parallel GETs make the read fast.
	store := s3.NewThrottled(fake, 200*MiB, 2*time.Millisecond)
	budget := memory.NewBudget(256 * MiB)
	r := NewReader(Config{Store: store, Budget: budget}, "big", `"v1"`, size)
	got := readConcurrently(t, r, kernelOrder(size, 128*KiB, 8, 2), 128*KiB, 4)
	r.Close()
	require.True(t, bytes.Equal(data, got), "bytes differ")

	gets, requested, maxOpen := fake.stats()
	require.GreaterOrEqual(t, maxOpen, 4, "prefetch GETs did not run in parallel (%d GETs)", gets)
	// Out-of-order reads must not restart anything: at most a few small direct GETs on top.
	require.LessOrEqual(t, requested, int64(size+2*MiB), "bytes requested")
	require.Zero(t, budget.InUse())
}

// With async reads the kernel sends a whole readahead burst at once (4 requests of 1 MiB
// with read_ahead_kb raised to 4 MiB) after the first, synchronous read, and they reach the
// handle in any order: a read far ahead of the last one, or far behind the furthest, is
// still the stream, not a seek that would drop the window and fetch everything again.
func TestReadaheadBurstsInAnyOrderStayOneStream(t *testing.T) {
	const size = 96 * MiB
	data := randomBytes(size, 3)
	fake := newFakeStore()
	fake.put("big", data, `"v1"`)
	budget := memory.NewBudget(256 * MiB)
	r := NewReader(Config{Store: fake, Budget: budget}, "big", `"v1"`, size)
	offs := append([]int64{0}, kernelOrder(size-MiB, MiB, 4, 4)...)
	for i := range offs[1:] {
		offs[1+i] += MiB
	}
	got := readConcurrently(t, r, offs, MiB, 4)
	r.Close()
	require.True(t, bytes.Equal(data, got), "bytes differ")
	gets, requested, _ := fake.stats()
	// A restarted stream prefetches again what it had prefetched: a GET larger than one read
	// over bytes an earlier such GET covered. A read whose worker was held up long enough
	// for its bytes to be freed is a straggler, served by a GET of its own size; how many
	// there are depends on the scheduler, so they are only logged.
	var prefetched []getCall
	for _, c := range fake.calls() {
		if c.length <= MiB {
			continue
		}
		for _, p := range prefetched {
			require.False(t, c.off < p.off+p.length && p.off < c.off+c.length,
				"GET [%d, %d) prefetches again what [%d, %d) did: a burst restarted the stream", c.off, c.off+c.length, p.off, p.off+p.length)
		}
		prefetched = append(prefetched, c)
	}
	t.Logf("%d GETs, %d MiB requested for %d MiB read", gets, requested/MiB, size/MiB)
	require.Zero(t, budget.InUse())
}

func TestRandomReadsFetchLittle(t *testing.T) {
	const size = 64 * MiB
	data := randomBytes(size, 3)
	fake := newFakeStore()
	fake.put("big", data, `"v1"`)
	r := NewReader(Config{Store: fake}, "big", `"v1"`, size)
	defer r.Close()
	rng := rand.New(rand.NewSource(4))
	const reads = 50
	prev := int64(size / 2)
	for i := 0; i < reads; i++ {
		off := rng.Int63n(size - 4*KiB)
		for abs(off-prev) < 4*MiB { // random means far from the previous read
			off = rng.Int63n(size - 4*KiB)
		}
		prev = off
		buf := make([]byte, 4*KiB)
		n, err := r.ReadAt(context.Background(), buf, off)
		require.NoError(t, err)
		require.Equal(t, 4*KiB, n)
		require.Equal(t, data[off:off+4*KiB], buf)
	}
	gets, requested, _ := fake.stats()
	require.Equal(t, reads, gets)
	require.LessOrEqual(t, requested, int64(reads*64*KiB), "random reads fetched more than 64 KiB each")
	for _, c := range fake.calls() {
		require.LessOrEqual(t, c.length, int64(64*KiB))
	}
}

// waitIdle waits until no prefetch GET runs, so that store counters are final.
func waitIdle(t *testing.T, r *Reader) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		n := r.inflight
		r.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d GETs still running", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestBodyFailureResumesWhereItStopped(t *testing.T) {
	const size = 3 * MiB
	data := randomBytes(size, 5)
	fake := newFakeStore()
	fake.put("k", data, `"v1"`)
	fake.failBodies = 2
	r := NewReader(Config{Store: fake, PartSize: 1 * MiB, InitialWindow: 1 * MiB}, "k", `"v1"`, size)
	defer r.Close()
	got := make([]byte, size)
	for off := int64(0); off < size; off += 128 * KiB {
		_, err := r.ReadAt(context.Background(), got[off:off+128*KiB], off)
		require.NoError(t, err)
	}
	require.Equal(t, data, got)
	calls := fake.calls()
	// The first GET broke half-way through; its retry asks for exactly the rest.
	first := calls[0]
	var resumed bool
	for _, c := range calls[1:] {
		if c.off == first.off+first.length/2 && c.length == first.length-first.length/2 {
			resumed = true
		}
	}
	require.True(t, resumed, "no GET resumed at the break; calls: %v", calls)
}

func TestBodyFailuresGiveUp(t *testing.T) {
	fake := newFakeStore()
	fake.put("k", randomBytes(1*MiB, 6), `"v1"`)
	fake.failBodies, fake.failAt = 1000, 1
	r := NewReader(Config{Store: fake}, "k", `"v1"`, 1*MiB)
	defer r.Close()
	_, err := r.ReadAt(context.Background(), make([]byte, 128*KiB), 0)
	require.ErrorIs(t, err, errConnReset)
}

func TestObjectChangedIsPreconditionFailed(t *testing.T) {
	const size = 4 * MiB
	data := randomBytes(size, 7)
	fake := newFakeStore()
	fake.put("k", data, `"v1"`)
	r := NewReader(Config{Store: fake, PartSize: 1 * MiB, InitialWindow: 1 * MiB, MaxWindow: 1 * MiB}, "k", `"v1"`, size)
	defer r.Close()
	buf := make([]byte, 128*KiB)
	_, err := r.ReadAt(context.Background(), buf, 0)
	require.NoError(t, err)
	require.Equal(t, data[:128*KiB], buf)

	fake.put("k", randomBytes(size, 8), `"v2"`)
	// Bytes beyond what was fetched before the change can only come from the new version.
	_, err = r.ReadAt(context.Background(), buf, 3*MiB)
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
	_, err = r.ReadAt(context.Background(), buf, 3*MiB+128*KiB)
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
}

func TestBackwardSeekInsideBufferReusesData(t *testing.T) {
	const size = 8 * MiB
	data := randomBytes(size, 9)
	fake := newFakeStore()
	fake.put("k", data, "")
	r := NewReader(Config{Store: fake, PartSize: 4 * MiB}, "k", "", size)
	defer r.Close()
	buf := make([]byte, 128*KiB)
	for off := int64(0); off < 1*MiB; off += 128 * KiB {
		_, err := r.ReadAt(context.Background(), buf, off)
		require.NoError(t, err)
	}
	waitIdle(t, r)
	gets, _, _ := fake.stats()
	_, err := r.ReadAt(context.Background(), buf, 256*KiB)
	require.NoError(t, err)
	require.Equal(t, data[256*KiB:384*KiB], buf)
	after, _, _ := fake.stats()
	require.Equal(t, gets, after, "a backward read inside the buffer sent a GET")
}

func TestFarSeekResetsWindow(t *testing.T) {
	const size = 64 * MiB
	data := randomBytes(size, 10)
	fake := newFakeStore()
	fake.put("k", data, "")
	r := NewReader(Config{Store: fake, MaxWindow: 8 * MiB}, "k", "", size)
	defer r.Close()
	buf := make([]byte, 128*KiB)
	for off := int64(0); off < 2*MiB; off += 128 * KiB {
		_, err := r.ReadAt(context.Background(), buf, off)
		require.NoError(t, err)
	}
	st := snapshot(r)
	require.True(t, st.streaming)
	require.Equal(t, int64(8*MiB), st.window)

	waitIdle(t, r)
	_, before, _ := fake.stats()
	_, err := r.ReadAt(context.Background(), buf, 40*MiB) // well past frontier+window
	require.NoError(t, err)
	require.Equal(t, data[40*MiB:40*MiB+128*KiB], buf)
	waitIdle(t, r)
	_, after, _ := fake.stats()
	require.LessOrEqual(t, after-before, int64(128*KiB), "the seek's read fetched more than itself")
	st = snapshot(r)
	require.False(t, st.streaming)
	require.Equal(t, 1, st.chunks, "the old window was not dropped")

	// Reading on from there starts a new stream with the small initial window.
	_, err = r.ReadAt(context.Background(), buf, 40*MiB+128*KiB)
	require.NoError(t, err)
	st = snapshot(r)
	require.True(t, st.streaming)
	require.Equal(t, int64(DefaultInitialWindow), st.window)
}

type state struct {
	streaming bool
	window    int64
	chunks    int
	inflight  int
}

func snapshot(r *Reader) state {
	r.mu.Lock()
	defer r.mu.Unlock()
	return state{streaming: r.streaming, window: r.window, chunks: len(r.chunks), inflight: r.inflight}
}

func TestBudgetNeverExceeded(t *testing.T) {
	const size = 32 * MiB
	data := randomBytes(size, 11)
	fake := newFakeStore()
	fake.put("k", data, "")
	store := s3.NewThrottled(fake, 100*MiB, 0)
	budget := memory.NewBudget(6 * MiB) // less than the window wants
	cfg := Config{Store: store, Budget: budget, PartSize: 2 * MiB}

	stop := make(chan struct{})
	var maxSeen atomic.Int64
	var watcher sync.WaitGroup
	watcher.Add(1)
	go func() {
		defer watcher.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if in := budget.InUse(); in > maxSeen.Load() {
				maxSeen.Store(in)
			}
			runtime.Gosched()
		}
	}()
	// Two readers share the budget, as two open files would.
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := NewReader(cfg, "k", "", size)
			defer r.Close()
			got := readConcurrently(t, r, kernelOrder(size, 128*KiB, 8, int64(i)), 128*KiB, 4)
			require.True(t, bytes.Equal(data, got))
		}(i)
	}
	wg.Wait()
	close(stop)
	watcher.Wait()
	require.LessOrEqual(t, maxSeen.Load(), budget.Limit())
	require.Zero(t, budget.InUse())
}

func TestSmallAndEmptyObjects(t *testing.T) {
	fake := newFakeStore()
	fake.put("empty", nil, `"e"`)
	fake.put("one", []byte{42}, `"o"`)
	ctx := context.Background()

	r := NewReader(Config{Store: fake}, "empty", `"e"`, 0)
	n, err := r.ReadAt(ctx, make([]byte, 10), 0)
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
	r.Close()

	r = NewReader(Config{Store: fake}, "one", `"o"`, 1)
	buf := make([]byte, 10)
	n, err = r.ReadAt(ctx, buf, 0)
	require.Equal(t, 1, n)
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, byte(42), buf[0])
	n, err = r.ReadAt(ctx, buf, 1)
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
	n, err = r.ReadAt(ctx, buf[:1], 0)
	require.Equal(t, 1, n)
	require.NoError(t, err)
	n, err = r.ReadAt(ctx, nil, 5)
	require.Equal(t, 0, n)
	require.NoError(t, err)
	r.Close()
	_, err = r.ReadAt(ctx, buf, 0)
	require.ErrorIs(t, err, ErrClosed)
}

func TestCloseStopsEverything(t *testing.T) {
	const size = 64 * MiB
	fake := newFakeStore()
	fake.put("k", randomBytes(size, 12), "")
	// Slow enough that prefetch GETs are still running at Close.
	store := s3.NewThrottled(fake, 1*MiB, 0)
	budget := memory.NewBudget(1 << 30)
	before := runtime.NumGoroutine()

	r := NewReader(Config{Store: store, Budget: budget}, "k", "", size)
	buf := make([]byte, 128*KiB)
	for off := int64(0); off < 512*KiB; off += 128 * KiB {
		_, err := r.ReadAt(context.Background(), buf, off)
		require.NoError(t, err)
	}
	// A read blocked on a GET that Close cancels must return, with an error.
	blocked := make(chan error, 1)
	go func() {
		_, err := r.ReadAt(context.Background(), buf, 3*MiB)
		blocked <- err
	}()
	require.Greater(t, snapshot(r).inflight, 0)
	r.Close()
	require.Error(t, <-blocked)
	require.Zero(t, budget.InUse())

	// Close waited for its goroutines; give exited ones a moment to be reaped.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines leaked")
	fake.mu.Lock()
	open := fake.open
	fake.mu.Unlock()
	require.Zero(t, open, "bodies left open")
}

func TestCanceledReadLeavesPrefetchAlone(t *testing.T) {
	const size = 4 * MiB
	data := randomBytes(size, 13)
	fake := newFakeStore()
	fake.put("k", data, "")
	r := NewReader(Config{Store: s3.NewThrottled(fake, 4*MiB, 0)}, "k", "", size)
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.ReadAt(ctx, make([]byte, 128*KiB), 512*KiB)
	require.ErrorIs(t, err, context.Canceled)
	buf := make([]byte, 128*KiB)
	_, err = r.ReadAt(context.Background(), buf, 512*KiB)
	require.NoError(t, err)
	require.Equal(t, data[512*KiB:640*KiB], buf)
}

func TestStragglerKeepsStreamRewindMovesIt(t *testing.T) {
	const size = 64 * MiB
	data := randomBytes(size, 14)
	fake := newFakeStore()
	fake.put("k", data, "")
	r := NewReader(Config{Store: fake}, "k", "", size)
	defer r.Close()
	buf := make([]byte, 128*KiB)
	read := func(off int64) {
		t.Helper()
		_, err := r.ReadAt(context.Background(), buf, off)
		require.NoError(t, err)
		require.Equal(t, data[off:off+128*KiB], buf)
	}
	for off := int64(0); off < 20*MiB; off += 128 * KiB {
		read(off)
	}
	before := snapshot(r)

	// One read far behind, from a kernel thread that was slow to deliver it.
	read(1 * MiB)
	require.Equal(t, before, snapshot(r), "a straggler disturbed the stream")

	// Reading on from the start again is a rewind: the stream follows it.
	for off := int64(0); off < 1*MiB; off += 128 * KiB {
		read(off)
	}
	st := snapshot(r)
	require.True(t, st.streaming)
	r.mu.Lock()
	frontier := r.frontier
	r.mu.Unlock()
	require.Equal(t, int64(1*MiB), frontier)
}

// TestBudgetHeldElsewhere: when another reader holds the whole budget and never reads on,
// this one must still make progress (directly into the caller's buffer), not wait forever.
func TestBudgetHeldElsewhere(t *testing.T) {
	const size = 16 * MiB
	data := randomBytes(size, 15)
	fake := newFakeStore()
	fake.put("k", data, "")
	budget := memory.NewBudget(8 * MiB)
	cfg := Config{Store: fake, Budget: budget, PartSize: 2 * MiB}
	idle := NewReader(cfg, "k", "", size)
	defer idle.Close()
	buf := make([]byte, 128*KiB)
	for off := int64(0); off < 1*MiB; off += 128 * KiB {
		_, err := idle.ReadAt(context.Background(), buf, off)
		require.NoError(t, err)
	}
	waitIdle(t, idle)
	require.False(t, budget.TryAcquire(2*MiB), "the idle reader should hold the budget")

	r := NewReader(cfg, "k", "", size)
	defer r.Close()
	got := readConcurrently(t, r, kernelOrder(size, 128*KiB, 8, 3), 128*KiB, 4)
	require.True(t, bytes.Equal(data, got))
	require.LessOrEqual(t, budget.InUse(), budget.Limit())
}

// A mount's metrics see its readers and their windows, and nothing once they are closed.
func TestStatsFollowReaders(t *testing.T) {
	const size = 32 * MiB
	fake := newFakeStore()
	fake.put("big", randomBytes(size, 5), `"v1"`)
	stats := &Stats{}
	cfg := Config{Store: fake, Budget: memory.NewBudget(256 * MiB), Stats: stats}
	a := NewReader(cfg, "big", `"v1"`, size)
	b := NewReader(cfg, "big", `"v1"`, size)
	require.EqualValues(t, 2, stats.Readers.Load())
	buf := make([]byte, MiB)
	for off := int64(0); off < 8*MiB; off += MiB {
		_, err := a.ReadAt(context.Background(), buf, off)
		require.NoError(t, err)
	}
	require.Greater(t, stats.Window.Load(), int64(MiB), "a stream's window grows")
	a.Close()
	b.Close()
	require.Zero(t, stats.Readers.Load())
	require.Zero(t, stats.Window.Load())
}
