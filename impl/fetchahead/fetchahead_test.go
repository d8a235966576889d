package fetchahead

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
)

func server(t *testing.T, mw func(http.Handler) http.Handler) s3.Store {
	t.Helper()
	_, store := s3test.Embedded(t, s3test.Options{Server: embedded.Options{Buckets: []string{"b"}, Middleware: mw}})
	return store
}

func put(t *testing.T, store s3.Store, key string, data []byte) string {
	t.Helper()
	info, err := store.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), s3.WriteOptions{})
	require.NoError(t, err)
	return info.ETag
}

// A body fetched ahead is the object's bytes, handed to one open; its memory is in the budget
// until released.
func TestFetchTakeRelease(t *testing.T) {
	store := server(t, nil)
	budget := memory.NewBudget(1 << 20)
	c := New(Config{Store: store, Budget: budget})
	defer c.Close()
	data := bytes.Repeat([]byte("abc"), 1000)
	etag := put(t, store, "k", data)
	require.True(t, c.Fetch("k", etag, int64(len(data)), false))
	require.True(t, c.Fetch("k", etag, int64(len(data)), false), "a second Fetch of the same version is the same body")
	got, release, ok := c.Take(context.Background(), "k", etag)
	require.True(t, ok)
	require.Equal(t, data, got)
	require.Equal(t, int64(len(data)), budget.InUse())
	release()
	release()
	require.Zero(t, budget.InUse())
	require.Zero(t, c.Held())
	_, _, ok = c.Take(context.Background(), "k", etag)
	require.False(t, ok, "a body serves one open")
	require.Equal(t, Stats{Fetched: 1, Taken: 1}, c.Stats())
}

// Another version, a failed or cut-short fetch, or no room: no body, and nothing held.
func TestNoWrongBytes(t *testing.T) {
	var cut atomic.Bool
	store := server(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/b/short" && cut.CompareAndSwap(true, false) {
				w.Header().Set("Content-Length", "3000")
				w.WriteHeader(http.StatusOK)
				w.Write([]byte("abc"))
				panic(http.ErrAbortHandler) // the connection breaks mid-body
			}
			next.ServeHTTP(w, r)
		})
	})
	budget := memory.NewBudget(1 << 20)
	c := New(Config{Store: store, Budget: budget, MaxBytes: 10_000})
	defer c.Close()
	ctx := context.Background()

	old := put(t, store, "k", []byte("old version"))
	put(t, store, "k", []byte("new version"))
	require.True(t, c.Fetch("k", old, 11, false))
	_, _, ok := c.Take(ctx, "k", old)
	require.False(t, ok, "If-Match refuses the old version")

	cut.Store(true)
	etag := put(t, store, "short", bytes.Repeat([]byte("x"), 3000))
	require.True(t, c.Fetch("short", etag, 3000, false))
	got, release, ok := c.Take(ctx, "short", etag)
	if ok {
		// The store re-requested the rest (a body cut short is a retryable fault).
		require.Equal(t, bytes.Repeat([]byte("x"), 3000), got, "a body cut short is never handed out as it is")
		release()
	}

	big := put(t, store, "big", bytes.Repeat([]byte("x"), 20_000))
	require.False(t, c.Fetch("big", big, 20_000, false), "over MaxBytes")
	tight := New(Config{Store: store, Budget: memory.NewBudget(100)})
	defer tight.Close()
	small := put(t, store, "small", bytes.Repeat([]byte("x"), 200))
	require.True(t, tight.Fetch("small", small, 200, false), "the budget lends its whole limit to the first")
	require.False(t, tight.Fetch("small2", small, 200, false), "no room left in the budget")

	require.Eventually(t, func() bool { return budget.InUse() == 0 && c.Held() == 0 }, 5*time.Second, 10*time.Millisecond)
}

// Bodies nobody opened are dropped after Keep, and their memory returned; MaxBytes bounds
// what is held at once.
func TestUnreadBodiesExpire(t *testing.T) {
	store := server(t, nil)
	budget := memory.NewBudget(1 << 20)
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	c := New(Config{Store: store, Budget: budget, MaxBytes: 3000, Keep: time.Hour, Clock: clk})
	defer c.Close()
	var etags []string
	for i := 0; i < 4; i++ {
		etags = append(etags, put(t, store, fmt.Sprint("f", i), bytes.Repeat([]byte("x"), 1000)))
	}
	for i := 0; i < 3; i++ {
		require.True(t, c.Fetch(fmt.Sprint("f", i), etags[i], 1000, false))
	}
	require.False(t, c.Fetch("f3", etags[3], 1000, false), "MaxBytes is full of bodies not yet expired")
	require.Eventually(t, func() bool { return c.Stats().Fetched == 3 }, 5*time.Second, 5*time.Millisecond)
	clk.Advance(2 * time.Hour)
	require.True(t, c.Fetch("f3", etags[3], 1000, false), "expired bodies make room")
	require.Eventually(t, func() bool { return budget.InUse() == 1000 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(3), c.Stats().Dropped)
}

// Bodies taken by opens still count against MaxBytes until released: a program holding many
// small files open cannot make the cache take more of the shared budget (found in review).
func TestTakenBodiesCountUntilReleased(t *testing.T) {
	store := server(t, nil)
	budget := memory.NewBudget(1 << 20)
	c := New(Config{Store: store, Budget: budget, MaxBytes: 2500})
	defer c.Close()
	var releases []func()
	for i := 0; i < 3; i++ {
		key := fmt.Sprint("f", i)
		etag := put(t, store, key, bytes.Repeat([]byte("x"), 1000))
		if !c.Fetch(key, etag, 1000, true) {
			require.Equal(t, 2, i, "the third body does not fit beside two taken ones")
			break
		}
		_, release, ok := c.Take(context.Background(), key, etag)
		require.True(t, ok)
		releases = append(releases, release)
	}
	require.LessOrEqual(t, budget.InUse(), int64(2500))
	for _, r := range releases {
		r()
	}
	require.Zero(t, budget.InUse())
	require.Zero(t, c.InUse())
}
