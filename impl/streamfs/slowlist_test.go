package streamfs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/vfs"
)

// slowPagesFixture is countingFixture (default TTL) whose store takes page, on the fixture's
// fake clock, for every LIST from the call of slow on, which also zeroes the counts.
func slowPagesFixture(t *testing.T, keys map[string]string, page time.Duration) (x *fixture, heads, lists *atomic.Int64, slow func()) {
	t.Helper()
	var clk atomic.Pointer[clock.Fake]
	x, heads, lists = countingFixtureWith(t, fixtureOptions{keys: keys, middleware: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c := clk.Load(); c != nil && r.URL.Query().Has("list-type") {
				c.Advance(page)
			}
			next.ServeHTTP(w, r)
		})
	}})
	return x, heads, lists, func() {
		clk.Store(x.clock)
		heads.Store(0)
		lists.Store(0)
	}
}

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
			// Five pages: past the 4,096 inodes above which expired ones are swept, so an
			// answer that asked the inodes a slow page recorded found them gone.
			const n = 4_500
			keys, _ := dirKeys(n)
			x, heads, lists, slow := slowPagesFixture(t, keys, c.page)
			look := lookerIn(t, x, "d")
			slow()
			for i := 0; i < n; i++ {
				if err := look(fmt.Sprintf("f%04d", i)); err != nil {
					t.Fatalf("f%04d: %v", i, err)
				}
			}
			settled(lists)
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
	keys, _ := dirKeys(n)
	x, heads, lists, slow := slowPagesFixture(t, keys, 400*time.Millisecond)
	look := lookerIn(t, x, "d")
	d, err := x.fs.Lookup(context.Background(), vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	slow()
	if names, _ := readAll(t, x, d.Attr.Inode, lists); len(names) != n {
		t.Fatalf("readdir: %d names, want %d", len(names), n)
	}
	requests := func() int64 { return heads.Load() + lists.Load() }
	heads.Store(0)
	lists.Store(0)
	for i := 3000; i < n; i++ { // the last page's names: read 0.4 s ago
		if err := look(fmt.Sprintf("f%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := requests(); got != 0 {
		t.Errorf("lookups of the names of the readdir's last page, read 0.4 s ago, sent %d requests, want none", got)
	}
	for i := 0; i < 5; i++ { // the first page's names: 1.6 s old, past the TTL
		if err := look(fmt.Sprintf("f%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if requests() == 0 {
		t.Errorf("lookups of names the readdir read 1.6 s ago, past the 1 s TTL, were answered without asking the store")
	}
}

// A directory whose listing for lookups (lookups out of order) takes longer than three
// quarters of the TTL is not listed again by each lookup that comes after its answers expired:
// 412 LISTs for 300 names when it was, 285 (one round trip a name) now.
func TestSlowListingIsNotRepeatedForEachLookup(t *testing.T) {
	const n = 2_500 // three pages, 0.4 s each: the listing after the first page takes 0.8 s
	keys, _ := dirKeys(n)
	x, _, lists, slow := slowPagesFixture(t, keys, 400*time.Millisecond)
	look := lookerIn(t, x, "d")
	slow()
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)[:300]
	for _, i := range order {
		x.clock.Advance(5 * time.Millisecond) // the program's own pace
		if err := look(fmt.Sprintf("f%04d", i)); err != nil {
			t.Fatalf("f%04d: %v", i, err)
		}
	}
	settled(lists)
	t.Logf("%d lookups out of order: %d LISTs", len(order), lists.Load())
	if l := lists.Load(); l > int64(len(order))*23/20 {
		t.Errorf("%d lookups out of order in a directory whose listing takes 0.8 s cost %d LISTs, want at most 1.15 a name (one round trip each, and the listing)", len(order), l)
	}
}

// The listing that goes on from the first page the directory's lookup read is timed from its
// own start: read at once, 0.8 s after that page, it is not taken for a slow one (which would
// leave every lookup out of order to a HEAD and a LIST of its own for a minute).
func TestAListingFromTheFirstPageIsTimedFromItsOwnStart(t *testing.T) {
	keys, _ := dirKeys(1_500)
	x, heads, _ := countingFixture(t, keys, time.Second)
	look := lookerIn(t, x, "d")
	x.clock.Advance(800 * time.Millisecond)
	for _, n := range []string{"f1400", "f1300"} { // out of order: a listing from the first page's token
		if err := look(n); err != nil {
			t.Fatal(err)
		}
	}
	x.clock.Advance(300 * time.Millisecond) // its answers expired: the next miss lists again
	heads.Store(0)
	for _, i := range []int{1200, 1100, 1350, 1050, 1250, 1150} {
		if err := look(fmt.Sprintf("f%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if h := heads.Load(); h > 2 {
		t.Errorf("lookups out of order after a fast listing sent %d HEADs, want at most 2: the directory was taken for too slow to list", h)
	}
}

// With --metadata-ttl indefinite a listing for lookups answers absent names too (three
// quarters of a hundred years overflowed, and every listing was taken for a slow one).
func TestListingAnswersAbsentNamesWithAnIndefiniteTTL(t *testing.T) {
	keys, _ := dirKeys(1_500)
	x, heads, lists := countingFixture(t, keys, 100*365*24*time.Hour)
	look := lookerIn(t, x, "d")
	for _, n := range []string{"f1400", "f1300"} {
		if err := look(n); err != nil {
			t.Fatal(err)
		}
	}
	heads.Store(0)
	lists.Store(0)
	for i := 0; i < 20; i++ {
		if err := look(fmt.Sprintf("f1%03dx", 999-i*7)); vfs.CodeOf(err) != vfs.CodeNotFound {
			t.Fatalf("f1%03dx: %v, want not found", 999-i*7, err)
		}
	}
	if h, l := heads.Load(), lists.Load(); h+l > 0 {
		t.Errorf("absent names after a listing sent %d HEADs and %d LISTs, want none", h, l)
	}
}

// A walk in key order that starts several pages past the first page the directory's lookup
// read reads from its first name, not the page after the first again for every lookup.
func TestWalkStartingFarPastTheFirstPage(t *testing.T) {
	keys, _ := dirKeys(9_000)
	x, heads, lists := countingFixture(t, keys, time.Minute)
	look := lookerIn(t, x, "d")
	heads.Store(0)
	lists.Store(0)
	for i := 8000; i < 8050; i++ {
		if err := look(fmt.Sprintf("f%04d", i)); err != nil {
			t.Fatal(err)
		}
		if i < 8010 {
			settled(lists) // the pages read ahead are in before the next lookup
		}
	}
	settled(lists)
	if h, l := heads.Load(), lists.Load(); h+l > 20 {
		t.Errorf("50 lookups in order on the ninth page sent %d HEADs and %d LISTs, want at most 20 in all", h, l)
	}
}

// Creating names in key order (`touch f1 f2 ...`, an extraction) in a directory of several
// pages: each create's lookup of its name is a miss in key order, but this mount's own create
// in between ends the walk, whose pages it would void; the lookups keep to the listing, whose
// absent answers stand for names this mount never had, and the creates send no LIST each.
func TestCreatesInOrderReadNoPageEach(t *testing.T) {
	keys, _ := dirKeys(1_500)
	x, _, lists := countingFixture(t, keys, time.Minute)
	ctx := context.Background()
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	lists.Store(0)
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("g%05d", i)
		if _, err := x.fs.Lookup(ctx, d.Attr.Inode, name); vfs.CodeOf(err) != vfs.CodeNotFound {
			t.Fatalf("%s: %v, want not found", name, err)
		}
		_, h, err := x.fs.Create(ctx, d.Attr.Inode, name, 0o644, vfs.Caller{Pid: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.fs.Flush(ctx, h, vfs.PID(1)); err != nil {
			t.Fatal(err)
		}
		x.fs.Release(h)
	}
	settled(lists)
	if l := lists.Load(); l > 5 {
		t.Errorf("50 creates of names in order sent %d LISTs, want a listing's few", l)
	}
}

// With --metadata-ttl 0 nothing a listing says can answer another lookup: lookups in order
// in a directory of several pages cost their own HEAD and LIST each, not a listing of the
// whole directory (or a walk's pages read ahead) for every one.
func TestZeroTTLLooksUpEachNameAlone(t *testing.T) {
	keys, _ := dirKeys(5_000)
	x, heads, lists := countingFixtureWith(t, fixtureOptions{keys: keys, ttl: -1})
	look := lookerIn(t, x, "d")
	heads.Store(0)
	lists.Store(0)
	for i := 2000; i < 2050; i++ {
		if err := look(fmt.Sprintf("f%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	settled(lists)
	if h, l := heads.Load(), lists.Load(); h > 50 || l > 50 {
		t.Errorf("50 lookups with a zero TTL sent %d HEADs and %d LISTs, want one of each a name", h, l)
	}
}
