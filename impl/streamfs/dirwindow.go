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
	below string    // nor names the pages before covered (keymap.Covered); "" for a first page
	upTo  string    // the page's greatest key or prefix ("" when it is the directory's last)
	at    time.Time // when its LIST started
	// bands say as of when names up to below are answered: each earlier page of the walk
	// whose range may still hold such a name (not keymap.Settled by below), in order, with
	// when it was read. Objects carried from them (tail) were seen then, and a name absent
	// there was absent then.
	bands []band
	token string                   // where the next page starts; "" on the last page
	tail  map[string]s3.ObjectInfo // objects on it a later page may still make directories
	// changes is dirList.changes when the walk's first page started: a page read after this
	// mount changed the directory would carry stale objects from the pages before it.
	changes uint64
}

// band is an earlier page of a walk: it showed the names up to upTo, as of at.
type band struct {
	upTo string
	at   time.Time
}

// covers reports whether w says what name is, and as of when.
func (w *listWindow) covers(name string) (time.Time, bool) {
	if name <= w.from || (w.below != "" && keymap.Covered(name, w.below)) {
		return time.Time{}, false
	}
	if w.upTo != "" && !keymap.Covered(name, w.upTo) {
		return time.Time{}, false
	}
	return w.timeOf(name), true
}

// timeOf is when what w says of name was seen: on an earlier page for a name up to below.
func (w *listWindow) timeOf(name string) time.Time {
	if w.below != "" && name <= w.below {
		for _, b := range w.bands {
			if name <= b.upTo {
				return b.at
			}
		}
	}
	return w.at
}

// following is the window of the page after w, to be read.
func (w *listWindow) following() *listWindow {
	next := &listWindow{from: w.from, below: w.upTo, token: w.token, tail: w.tail, changes: w.changes}
	for _, b := range w.bands {
		if !keymap.Settled(b.upTo, w.upTo) {
			next.bands = append(next.bands, b)
		}
	}
	next.bands = append(next.bands, band{upTo: w.upTo, at: w.at})
	return next
}

// walkedLocked is told of a lookup in dir that a page of a walk answered before it reached
// fromWindowLocked (the page recorded the name's inode): once the walk is on a page read
// ahead, the pages before it go and the next one is read.
// LOCKS_REQUIRED(f.mu)
func (f *FS) walkedLocked(dir, name string) {
	dl := f.dirLists[dir]
	if dl == nil || len(dl.wins) < 2 {
		return
	}
	for i := len(dl.wins) - 1; i > 0; i-- {
		if _, ok := dl.wins[i].covers(name); ok {
			dl.wins = dl.wins[i:]
			f.readAheadWindowLocked(dir, dl)
			return
		}
	}
}

// fromWindowLocked answers a lookup of path in the too-big directory dir from a window of its
// listing, reading one when the directory's misses come in key order: found, absent, or
// ok=false to resolve the name on its own. Called and returns with f.mu held.
// LOCKS_REQUIRED(f.mu)
func (f *FS) fromWindowLocked(ctx context.Context, dir, path string, dl *dirList) (res resolution, ok bool, err error) {
	res, ok, _, err = f.windowLocked(ctx, dir, path, dl, windowStreak)
	return res, ok, err
}

// windowLocked is fromWindowLocked for any directory: a walk starts once need misses after
// the first came in ascending order. walking is false when the name is not part of a walk
// (no page answers it and its misses are not in order yet): the caller decides how to
// answer it. Called and returns with f.mu held.
// LOCKS_REQUIRED(f.mu)
func (f *FS) windowLocked(ctx context.Context, dir, path string, dl *dirList, need int) (res resolution, ok, walking bool, err error) {
	_, name := keymap.Split(path)
	for waited := false; ; waited = true {
		now := f.clock.Now()
		if in := f.freshChildLocked(path, now); in != nil {
			f.walkedLocked(dir, name)
			return foundAt(in), true, true, nil
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
				return resolution{}, false, true, nil // a name this mount changed: asked alone
			}
			if now.Before(at.Add(min(f.cfg.NegativeTTL, f.cfg.MetadataTTL))) {
				return resolution{}, true, true, nil
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
	// A name this mount made or removed in the directory between two misses ends the
	// streak: a walk's pages would be dropped at once (readWindowLocked), and creates of
	// names in order (`touch f1 f2 ...`, an extraction) would each read a page.
	if dl.lastMiss != "" && name > dl.lastMiss && dl.missChanges == dl.changes {
		dl.streak++
	} else {
		dl.streak = 0
	}
	dl.lastMiss, dl.missChanges = name, dl.changes
	if dl.streak < need || dl.winRunning != nil {
		return resolution{}, false, false, nil
	}
	// The page starts just below the name: after it with its last character cut, so that
	// the name is on it whatever it is.
	_, size := utf8.DecodeLastRuneInString(name)
	atName := &listWindow{from: name[:len(name)-size], changes: dl.changes}
	w := atName
	if first := f.firstPageLocked(dir, dl, name); first != nil {
		// The walk begins past the first page the directory's own lookup read, which still
		// holds: it goes on from that page's continuation token, one round trip less when
		// the name is on the next page.
		w = first.following()
	}
	asked := &askedName{name: name}
	for {
		done := make(chan struct{})
		dl.winRunning = done
		if ok, err := f.readWindowLocked(ctx, dir, dl, w, done, asked); err != nil || !ok {
			// A store that refuses the page (throttling, no StartAfter): the name alone.
			return resolution{}, false, true, nil
		}
		if _, covered := w.covers(name); covered || w == atName || dl.winRunning != nil {
			break
		}
		// The name lies further on than the page after the first: the walk starts at the
		// name instead (from the first page's token again, each lookup read that page).
		w = atName
	}
	dl.wins = []*listWindow{w}
	f.readAheadWindowLocked(dir, dl)
	if in := f.freshChildLocked(path, f.clock.Now()); in != nil {
		return foundAt(in), true, true, nil
	}
	// The page answers the lookup that read it as of its request, as a HEAD does, even when
	// it took longer than the TTL (a slow or retried LIST). Its inodes may be expired by
	// then, and swept: asking them answered a name the page showed absent.
	if asked.shown {
		return asked.res, true, true, nil
	}
	if _, covered := w.covers(name); covered && !f.knownLocked(path) {
		return resolution{}, true, true, nil
	}
	return resolution{}, false, true, nil
}

// firstPageLocked is the first page of dir's listing that its own lookup read
// (recordFirstPageLocked) as a page of a walk, if it still holds, this mount changed nothing
// in dir since, more pages follow it, and name lies beyond it; else nil.
// LOCKS_REQUIRED(f.mu)
func (f *FS) firstPageLocked(dir string, dl *dirList, name string) *listWindow {
	if dl.upTo == "" || dl.token == "" || !f.clock.Now().Before(dl.absentTil) || f.changedSinceLocked(dir, dl.listedAt) ||
		name <= dl.upTo {
		return nil
	}
	return &listWindow{upTo: dl.upTo, at: dl.listedAt, token: dl.token, tail: dl.tail, changes: dl.changes}
}

// readAheadWindowLocked reads, in the background, the pages after the last of dl.wins, one
// after another, until windowPages are kept: the listing runs ahead of the walk instead of
// starting a page only when the walk reaches the one before. The page being read is
// dl.winRunning from the moment it is decided, so a lookup that needs it waits for it
// instead of reading its own.
// LOCKS_REQUIRED(f.mu)
func (f *FS) readAheadWindowLocked(dir string, dl *dirList) {
	if n := len(dl.wins); n == 0 || n >= windowPages || dl.winRunning != nil || dl.wins[n-1].token == "" {
		return
	}
	done := make(chan struct{})
	dl.winRunning = done
	go func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for {
			if len(dl.wins) == 0 { // the walk's pages expired meanwhile
				dl.winRunning = nil
				close(done)
				return
			}
			last := dl.wins[len(dl.wins)-1]
			w := last.following()
			ok, err := f.readWindowLocked(context.Background(), dir, dl, w, done, nil)
			// A failure leaves the names to be resolved one by one, or a walk started again.
			if err != nil || !ok || len(dl.wins) == 0 || dl.wins[len(dl.wins)-1] != last {
				return // or the walk started again elsewhere meanwhile
			}
			dl.wins = append(dl.wins, w)
			if len(dl.wins) >= windowPages || w.token == "" || dl.winRunning != nil {
				return
			}
			done = make(chan struct{})
			dl.winRunning = done
		}
	}()
}

// readWindowLocked reads the page w stands for (from its token, or after w.from), records
// what it shows (with the objects carried from the pages before it) and fills w in; ok is
// false if this mount changed the directory since w.changes or the page covers no name; asked,
// if not nil, gets what the page showed of its name. dl.winRunning is done,
// set by the caller; it is closed and cleared once the page is read. f.mu is released
// meanwhile.
// LOCKS_REQUIRED(f.mu)
func (f *FS) readWindowLocked(ctx context.Context, dir string, dl *dirList, w *listWindow, done chan struct{}, asked *askedName) (ok bool, err error) {
	start := f.clock.Now()
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
		return false, storeError("lookup", dir, err)
	}
	if dl.changes != w.changes {
		return false, nil
	}
	l, complete, upTo := listdir.Page(f.prefix, dir, page)
	if !complete && upTo == "" {
		return false, nil // an empty page that says more follow covers no name
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
		f.recordListedLocked(keymap.Join(dir, e.Name), e.Kind, info, isObject, w.timeOf(e.Name))
		if asked != nil && e.Name == asked.name {
			asked.shown, asked.res = true, resolution{found: true, kind: e.Kind}
			if e.Kind == keymap.File {
				asked.res.info = info
			}
		}
	}
	return true, nil
}

// askedName is the name whose lookup reads a page, and what the page showed of it.
type askedName struct {
	name  string
	shown bool
	res   resolution
}
