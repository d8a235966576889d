package streamfs_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
)

// A store whose listing pages are slow (a real store's large prefix, MinIO building its
// listing cache): a directory of a few pages takes longer to list than the metadata TTL, so a
// listing for lookups is out of date by the time its last page comes. A walk of the
// directory's names in order must still cost about one pass over its pages, not a listing per
// name (each lookup found the last listing expired and, the directory being hot, listed it
// again), nor a HEAD and a LIST per name.
func TestSlowListingsStillAnswerAWalk(t *testing.T) {
	const n = 4_500 // five pages
	keys := map[string]string{}
	for i := 0; i < n; i++ {
		keys[fmt.Sprintf("d/f%05d", i)] = "x"
	}
	var clk atomic.Pointer[clock.Fake]
	var heads, lists atomic.Int64
	x := newFixtureWith(t, fixtureOptions{keys: keys, middleware: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodHead:
				heads.Add(1)
			case r.Method == http.MethodGet && r.URL.Query().Has("list-type"):
				lists.Add(1)
				if c := clk.Load(); c != nil {
					c.Advance(300 * time.Millisecond) // each page takes 0.3 s: five take 1.5 s
				}
			}
			next.ServeHTTP(w, r)
		})
	}})
	look := lookerIn(t, x, "d")
	clk.Store(x.clock)
	heads.Store(0)
	lists.Store(0)
	for i := 0; i < n; i++ {
		if err := look(fmt.Sprintf("f%05d", i)); err != nil {
			t.Fatalf("f%05d: %v", i, err)
		}
		if i%1000 == 0 {
			t.Logf("after %d lookups: %d HEADs, %d LISTs", i+1, heads.Load(), lists.Load())
		}
	}
	settled(&lists)
	t.Logf("walk of %d names: %d HEADs, %d LISTs", n, heads.Load(), lists.Load())
	if h, l := heads.Load(), lists.Load(); h > 30 || l > 40 {
		t.Errorf("a walk in order over a directory whose listing outlasts the TTL cost %d HEADs and %d LISTs, want at most 30 and 40 (its pages, a few times over)", h, l)
	}
}
