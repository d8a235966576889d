package streamfs

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/mount-s3/mount-s3/impl/listdir"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Lookups in key order in a directory too big to list for lookups (tooBig). `ls -l`, find,
// du and a loader reading a sorted manifest look names up in the order a listing shows them;
// in a directory of a million entries each such lookup cost a round trip of its own (a HEAD
// and a LIST), so `ls -l` took hours at S3's latency. Once a directory's misses come in
// ascending order (windowStreak), a miss reads one LIST page that starts at the name instead:
// it answers that name and the ones after it, found and absent, each for the TTLs counted
// from when its request started (S3), and the pages after it are read ahead while they are
// answered, up to windowPages. Only those pages are kept per directory, so memory does not
// grow with the directory. Lookups out of order keep the HEAD + LIST pair.
const (
	windowStreak = 2
	// windowPages is how many pages a directory keeps for such a walk: the one it is on and
	// those read ahead.
	windowPages = 4
)

// listWindow is one page of a directory's listing read for lookups in key order.
// GUARDED_BY(FS.mu), all fields.
type listWindow struct {
	from  string    // names up to this one are not covered (the page started after it)
	below string    // nor names the page before covered (keymap.Covered); "" for a first page
	upTo  string    // the page's greatest key or prefix ("" when it is the directory's last)
	at    time.Time // when its LIST started
	// tailAt is when the page before started: names up to below, carried from it, are
	// answered as of then.
	tailAt time.Time
	token  string                   // where the next page starts; "" on the last page
	tail   map[string]s3.ObjectInfo // objects on it a later page may still make directories
}

// covers reports whether w says what name is, and as of when.
func (w *listWindow) covers(name string) (time.Time, bool) {
	if name <= w.from || (w.below != "" && keymap.Covered(name, w.below)) {
		return time.Time{}, false
	}
	if w.upTo != "" && !keymap.Covered(name, w.upTo) {
		return time.Time{}, false
	}
	if w.below != "" && name <= w.below {
		return w.tailAt, true
	}
	return w.at, true
}

// fromWindowLocked answers a lookup of path in the too-big directory dir from a window of its
// listing, reading one when the directory's misses come in key order: found, absent, or
// ok=false to resolve the name on its own. Called and returns with f.mu held.
// LOCKS_REQUIRED(f.mu)
func (f *FS) fromWindowLocked(ctx context.Context, dir, path string, dl *dirList) (res resolution, ok bool, err error) {
	_, name := keymap.Split(path)
	for waited := false; ; waited = true {
		now := f.clock.Now()
		if in := f.freshChildLocked(path, now); in != nil {
			return foundAt(in), true, nil
		}
		for i, w := range dl.wins {
			at, covered := w.covers(name)
			if !covered {
				continue
			}
			if i > 0 { // the walk has reached a page read ahead: the ones before it are done
				dl.wins = dl.wins[i:]
				f.readAheadWindowLocked(dir, dl)
			}
			if f.knownLocked(path) {
				return resolution{}, false, nil // a name this mount changed: asked alone
			}
			if now.Before(at.Add(min(f.cfg.NegativeTTL, f.cfg.MetadataTTL))) {
				return resolution{}, true, nil
			}
			// Expired (a walk slower than the TTL): the walk goes on from a fresh page.
			dl.wins = nil
			break
		}
		if dl.winRunning != nil && !waited {
			// A page is being read, most likely the one this name is on.
			f.waitLocked(ctx, dl.winRunning)
			continue
		}
		break
	}
	if dl.lastMiss != "" && name > dl.lastMiss {
		dl.streak++
	} else {
		dl.streak = 0
	}
	dl.lastMiss = name
	if dl.streak < windowStreak || dl.winRunning != nil {
		return resolution{}, false, nil
	}
	// The page starts just below the name: after it with its last character cut, so that
	// the name is on it whatever it is.
	_, size := utf8.DecodeLastRuneInString(name)
	w, err := f.readWindowLocked(ctx, dir, dl, &listWindow{from: name[:len(name)-size]})
	if err != nil || w == nil {
		return resolution{}, false, err
	}
	dl.wins = []*listWindow{w}
	f.readAheadWindowLocked(dir, dl)
	if in := f.freshChildLocked(path, f.clock.Now()); in != nil {
		return foundAt(in), true, nil
	}
	if _, covered := w.covers(name); covered && !f.knownLocked(path) {
		return resolution{}, true, nil
	}
	return resolution{}, false, nil
}

// readAheadWindowLocked reads, in the background, the pages after the last of dl.wins, one
// after another, until windowPages are kept: the listing runs ahead of the walk instead of
// starting a page only when the walk reaches the one before.
// LOCKS_REQUIRED(f.mu)
func (f *FS) readAheadWindowLocked(dir string, dl *dirList) {
	if len(dl.wins) == 0 || dl.winRunning != nil || dl.aheadRunning {
		return
	}
	dl.aheadRunning = true
	go func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		defer func() { dl.aheadRunning = false }()
		for len(dl.wins) > 0 && len(dl.wins) < windowPages && dl.winRunning == nil {
			last := dl.wins[len(dl.wins)-1]
			if last.token == "" {
				return
			}
			next := &listWindow{from: last.from, below: last.upTo, tailAt: last.at, token: last.token, tail: last.tail}
			// A failure leaves the names to be resolved one by one, or a window read again.
			w, err := f.readWindowLocked(context.Background(), dir, dl, next)
			if err != nil || w == nil || len(dl.wins) == 0 || dl.wins[len(dl.wins)-1] != last {
				return // or the walk started again elsewhere meanwhile
			}
			dl.wins = append(dl.wins, w)
		}
	}()
}

// readWindowLocked reads the page w stands for (from its token, or after w.from), records
// what it shows (with the objects carried from the page before it), and returns w filled in,
// or nil if this mount changed the directory while it was read. f.mu is released meanwhile.
// LOCKS_REQUIRED(f.mu)
func (f *FS) readWindowLocked(ctx context.Context, dir string, dl *dirList, w *listWindow) (*listWindow, error) {
	done := make(chan struct{})
	dl.winRunning = done
	start, changes := f.clock.Now(), dl.changes
	in := s3.ListInput{Prefix: keymap.DirKey(f.prefix, dir), Delimiter: keymap.Delimiter, MaxKeys: firstPageKeys}
	if w.token != "" {
		in.ContinuationToken = w.token
	} else {
		in.StartAfter = in.Prefix + w.from
	}
	f.mu.Unlock()
	page, err := f.store.List(ctx, in)
	f.mu.Lock()
	dl.winRunning = nil
	close(done)
	if err != nil {
		return nil, storeError("lookup", dir, err)
	}
	if dl.changes != changes {
		return nil, nil
	}
	l, complete, upTo := listdir.Page(f.prefix, dir, page)
	if !complete && upTo == "" {
		return nil, nil // an empty page that says more follow covers no name
	}
	for name, info := range w.tail {
		if _, ok := l.Objects[name]; !ok {
			l.Names.AddObject(name)
			l.Objects[name] = info
		}
	}
	w.at, w.upTo, w.token, w.tail = start, upTo, page.NextContinuationToken, nil
	if complete {
		w.upTo = ""
	}
	for _, e := range l.Names.Entries() {
		if e.Name <= w.from {
			continue
		}
		info, isObject := l.Objects[e.Name]
		if !complete && !keymap.Covered(e.Name, upTo) {
			// The next page may still show it as a directory (K4): decided with that one.
			if isObject {
				if w.tail == nil {
					w.tail = map[string]s3.ObjectInfo{}
				}
				w.tail[e.Name] = info
			}
			continue
		}
		at := start
		if w.below != "" && e.Name <= w.below {
			at = w.tailAt // carried from the page before: seen then
		}
		f.recordListedLocked(keymap.Join(dir, e.Name), e.Kind, info, isObject, at)
	}
	return w, nil
}
