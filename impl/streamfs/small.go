package streamfs

import (
	"context"
	"sort"
	"time"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Small files in one round trip (impl/fetchahead, Config.FetchAhead). A file the mount knows
// to be at most smallWhole bytes is fetched whole with one GET started at open, not after the
// kernel's first READ. And when the files of a directory are opened in listing order (two
// opens in a row, each of a file at most two places after the one before: cp -r, tar, rsync,
// a loader walking a dataset), the next scanAhead small files of the listing are fetched
// ahead, several at once, so that their opens find them in memory. Only files whose metadata
// is fresh (rule S3) are fetched ahead, at the version that metadata names (If-Match), so a
// body fetched ahead is the version an open at that moment would read.
const (
	smallWhole = 1 << 20
	scanAhead  = 8
	scanWindow = 5 * time.Second
	// ordersMax bounds the directories whose file order is remembered, orderNamesMax the
	// names remembered for one.
	ordersMax     = 64
	orderNamesMax = 16384
)

// fileOrder is a directory's files in listing order, from its last listing.
type fileOrder struct {
	at    time.Time
	names []string // sorted (K6)
}

// dirScan is where the opens of one directory's files have got to.
type dirScan struct {
	last string    // the file opened last
	at   time.Time // when
	run  int       // opens in listing order in a row, after the first
}

// recordOrderLocked keeps the files of dir's listing (entries in listing order) for the scans
// of its files.
// LOCKS_REQUIRED(f.mu)
func (f *FS) recordOrderLocked(dir string, entries []keymap.Entry, now time.Time) {
	if f.cfg.FetchAhead == nil {
		return
	}
	var names []string
	for _, e := range entries {
		if e.Kind == keymap.File && len(names) < orderNamesMax {
			names = append(names, e.Name)
		}
	}
	sort.Strings(names)
	if len(f.orders) >= ordersMax && f.orders[dir] == nil {
		oldest := ""
		for d, o := range f.orders {
			if oldest == "" || o.at.Before(f.orders[oldest].at) {
				oldest = d
			}
		}
		delete(f.orders, oldest)
		delete(f.scans, oldest)
	}
	f.orders[dir] = &fileOrder{at: now, names: names}
}

// fetchSmallLocked is told of the open of file in (at key): it starts fetching it whole if it
// is small, and the next files if the opens of its directory follow the listing. It reports
// whether the open's own file is being fetched whole.
// LOCKS_REQUIRED(f.mu)
func (f *FS) fetchSmallLocked(in *inode, key string) bool {
	c := f.cfg.FetchAhead
	if c == nil {
		return false
	}
	whole := in.size <= smallWhole && in.etag != "" && c.Fetch(key, in.etag, in.size, true)
	now := f.clock.Now()
	dir, name := keymap.Split(in.path)
	order := f.orders[dir]
	if order == nil {
		return whole
	}
	i := sort.SearchStrings(order.names, name)
	if i == len(order.names) || order.names[i] != name {
		return whole
	}
	s := f.scans[dir]
	if s == nil {
		s = &dirScan{}
		f.scans[dir] = s
	}
	if j := sort.SearchStrings(order.names, s.last); s.last != "" && j < i && i-j <= 2 && now.Sub(s.at) < scanWindow {
		s.run++
	} else {
		s.run = 0
	}
	s.last, s.at = name, now
	if s.run == 0 {
		return whole
	}
	for _, n := range order.names[i+1 : min(len(order.names), i+1+scanAhead)] {
		p := keymap.Join(dir, n)
		next := f.freshChildLocked(p, now)
		if next == nil || next.kind != keymap.File || next.writer != nil || next.size > smallWhole || next.etag == "" {
			continue
		}
		c.Fetch(keymap.FileKey(f.prefix, p), next.etag, next.size, false)
	}
	return whole
}

// wholeOf returns the whole object of a handle whose file was fetched whole, waiting for the
// fetch started at open; ok is false if the reader serves it (not small, or the fetch failed).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) wholeOf(ctx context.Context, rh *readHandle) ([]byte, bool) {
	rh.mu.Lock()
	defer rh.mu.Unlock()
	if rh.pending {
		rh.pending = false
		if data, release, ok := f.cfg.FetchAhead.Take(ctx, rh.key, rh.etag); ok {
			rh.whole, rh.release = data, release
		}
	}
	return rh.whole, rh.whole != nil
}
