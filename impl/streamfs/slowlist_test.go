package streamfs_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/vfs"
)

// A store whose listing pages are slow (a real store's large prefix, MinIO building its
// listing cache, a LIST retried after throttling): a directory of a few pages takes longer to
// list than the metadata TTL, so a listing for lookups is out of date by the time its last
// page comes. A walk of the directory's names in order must still find every name, and cost
// about one pass over its pages: not a listing per name (each lookup found the last listing
// expired and, the directory being hot, listed it again: 17,500 LISTs for 4,500 names), nor a
// HEAD and a LIST per name. When even one page takes longer than the TTL, nothing a page read
// ahead says is fresh when the walk reaches it; each name is then worth one round trip, and
// the page a lookup reads for itself still answers it (a name it showed was answered absent,
// its inode already expired).
func TestSlowListingsStillAnswerAWalk(t *testing.T) {
	for _, c := range []struct {
		page               time.Duration
		maxHeads, maxLists int64
		perNameRoundTrips  bool
	}{
		{page: 300 * time.Millisecond, maxHeads: 3, maxLists: 10},
		{page: 1200 * time.Millisecond, perNameRoundTrips: true},
	} {
		t.Run(c.page.String()+" a page", func(t *testing.T) {
			const n = 3_500 // four pages
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
						if c0 := clk.Load(); c0 != nil {
							c0.Advance(c.page)
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
			}
			settled(&lists)
			h, l := heads.Load(), lists.Load()
			t.Logf("walk of %d names: %d HEADs, %d LISTs", n, h, l)
			if c.perNameRoundTrips {
				c.maxHeads, c.maxLists = n, n+40
			}
			if h > c.maxHeads || l > c.maxLists {
				t.Errorf("a walk in order over a directory whose pages take %v each cost %d HEADs and %d LISTs, want at most %d and %d", c.page, h, l, c.maxHeads, c.maxLists)
			}
		})
	}
}

// A readdir of several slow pages records each name as of the page that showed it: the names
// of its last pages are still fresh when the readdir ends, so `ls -l` that follows asks the
// store nothing for them; those of its first pages, older than the TTL, are asked again.
func TestReadDirRecordsEachNameAsOfItsPage(t *testing.T) {
	const n = 3_500 // four pages, 0.4 s each: the first page is 1.6 s old at the end
	keys := map[string]string{}
	for i := 0; i < n; i++ {
		keys[fmt.Sprintf("d/f%05d", i)] = "x"
	}
	var clk atomic.Pointer[clock.Fake]
	var requests atomic.Int64
	x := newFixtureWith(t, fixtureOptions{keys: keys, middleware: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c0 := clk.Load(); c0 != nil {
				requests.Add(1)
				if r.URL.Query().Has("list-type") {
					c0.Advance(400 * time.Millisecond)
				}
			}
			next.ServeHTTP(w, r)
		})
	}})
	look := lookerIn(t, x, "d")
	d, err := x.fs.Lookup(context.Background(), vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	clk.Store(x.clock)
	var lists atomic.Int64
	if names, _ := readAll(t, x, d.Attr.Inode, &lists); len(names) != n {
		t.Fatalf("readdir: %d names, want %d", len(names), n)
	}
	requests.Store(0)
	for i := 3000; i < n; i++ { // the last page's names: read 0.4 s ago
		if err := look(fmt.Sprintf("f%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := requests.Load(); got != 0 {
		t.Errorf("lookups of the names of the readdir's last page, read 0.4 s ago, sent %d requests, want none", got)
	}
	for i := 0; i < 5; i++ { // the first page's names: 1.6 s old, past the TTL
		if err := look(fmt.Sprintf("f%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if requests.Load() == 0 {
		t.Errorf("lookups of names the readdir read 1.6 s ago, past the 1 s TTL, were answered without asking the store")
	}
}
