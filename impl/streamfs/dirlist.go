package streamfs

import (
	"context"
	"time"

	"github.com/mount-s3/mount-s3/impl/listdir"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Lookups answered from a listing. A lookup costs a HEAD and a one-key LIST (resolve): one
// round trip, but one per name, and `stat` of every file of a directory, `find`, `du` or a
// loader walking a dataset then cost a round trip per name. A directory that sees repeated
// lookups is listed instead, once, and the listing answers its siblings' lookups, found and
// not found, for as long as rule S3 lets metadata be reused: found names for the metadata TTL
// and absent ones for the negative TTL, both counted from when the listing started. One listing
// runs per directory at a time; concurrent lookups wait for it. A directory too large to list
// (more than listPagesMax pages) keeps the per-name lookups, unless they come in key order:
// then a page at a time answers them (dirwindow.go).
const (
	// listAfterMisses is how many lookups of one directory go to the store within
	// listMissWindow before the directory is listed instead.
	listAfterMisses = 2
	listMissWindow  = 2 * time.Second
	// listHot: a directory listed this recently is listed again at its next miss.
	listHot = 10 * time.Second
	// listPagesMax bounds a listing made for lookups (1,000 entries a page).
	listPagesMax = 10
	// tooBigFor is how long a directory found too big is left to per-name lookups.
	tooBigFor = time.Minute
	// firstPageKeys is the size of the page a lookup lists below its name (resolve): S3's
	// largest, so that a directory of up to 1,000 entries is known whole from its own lookup.
	firstPageKeys = 1000
)

// dirList is what lookups know of one directory's listing. GUARDED_BY(FS.mu), all fields.
type dirList struct {
	misses    int
	firstMiss time.Time
	looking   int           // lookups of names in the directory under way (fromListingLocked)
	running   chan struct{} // non-nil while a listing runs; closed when it ends
	listedAt  time.Time     // when the last complete listing started
	absentTil time.Time     // names not in that listing are absent until then
	tooBig    time.Time     // left to per-name lookups (and walks in key order) until then: too big or too slow to list
	// refreshing: a listing ahead of this one's expiry is about to start (refreshAheadLocked).
	refreshing bool
	// changes counts names this mount made or removed in the directory (or below it): a
	// listing that ran while one happened cannot say what is absent.
	changes uint64
	// upTo: the listing was the directory's first page only (recordFirstPageLocked), and
	// says what is absent only of names up to this one ("": the listing was complete).
	// token is where the pages after it start, and tail the objects on it whose names it
	// does not cover (a later page may show them as directories, K4), so that a listing for
	// lookups can go on from it instead of reading it again.
	upTo, token string
	tail        map[string]s3.ObjectInfo
	// A too-big directory's lookups in key order (dirwindow.go): the last name looked up on
	// its own, how many such lookups in a row came in ascending order, the page answering
	// the walk and those read ahead, and a channel closed when the page being read is.
	lastMiss    string
	missChanges uint64 // changes at lastMiss
	streak      int
	wins        []*listWindow
	winRunning  chan struct{}
}

// localChangeLocked is told of every name this mount makes, commits to the bucket or removes:
// a listing of an ancestor that runs across it records no metadata. Its absent answers stay:
// every name this mount changes is known for as long as those answers last (knownLocked,
// changedLocked), and a known name is never answered absent from a listing, so a file just uploaded, whose inode the kernel has forgotten, is
// asked for on its own. Voiding the whole listing instead made every create in a busy
// directory list it again (a LIST per file).
// LOCKS_REQUIRED(f.mu)
func (f *FS) localChangeLocked(path string) {
	f.changedLocked(path, f.clock.Now())
	for dir := path; dir != ""; {
		dir, _ = keymap.Split(dir)
		if dl := f.dirLists[dir]; dl != nil {
			dl.changes++
		}
	}
	f.aheadChangedLocked(path)
}

// refreshAheadLocked lists dir again in the background when a lookup comes in the second
// half of its listing's life, so that lookups that keep coming (stat of every name of a big
// directory, a loader with a manifest) never wait for a listing: the next one is ready, or
// running, when the current one expires. Each answer still comes from a listing that started
// within the TTL (S3).
// LOCKS_REQUIRED(f.mu)
func (f *FS) refreshAheadLocked(dir string, now time.Time) {
	dl := f.dirLists[dir]
	// A big directory's first page (upTo set) is not refreshed: one lookup of a name it
	// answered would list up to listPagesMax pages in the background.
	if dl == nil || dl.upTo != "" || dl.running != nil || dl.refreshing || dl.listedAt.IsZero() || now.Before(dl.tooBig) {
		return
	}
	if age := now.Sub(dl.listedAt); age < f.cfg.MetadataTTL/2 || age >= f.cfg.MetadataTTL {
		return
	}
	dl.refreshing = true
	go func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		dl.refreshing = false
		if dl.running == nil && f.dirLists[dir] == dl {
			f.listForLookupsLocked(context.Background(), dir, "", dl)
		}
	}()
}

// absentFromListingLocked reports whether a listing of dir still says that path, a name
// this mount never had, is absent (S3's negative TTL, counted from the listing's start).
// LOCKS_REQUIRED(f.mu)
func (f *FS) absentFromListingLocked(dir, path string, now time.Time) bool {
	dl := f.dirLists[dir]
	if dl == nil || !now.Before(dl.absentTil) || now.Before(dl.tooBig) || f.knownLocked(path) {
		return false
	}
	_, name := keymap.Split(path)
	return dl.upTo == "" || keymap.Covered(name, dl.upTo)
}

// recordFirstPageLocked records what the first page of directory dir's listing, read by the
// lookup of dir at start (resolve), says: the metadata of the children it shows, and which
// names it shows absent (all, if it is the whole directory, else those it covers). A whole
// directory is also kept for the readdir that usually follows the lookup (as a listing made
// ahead of a walk), so `ls -l` of a directory of up to 1,000 entries costs the one round
// trip of its lookup; a bigger directory's readdir goes on from the second page. Nothing is
// recorded if this mount changed the directory since start, or if a newer listing is known.
// LOCKS_REQUIRED(f.mu)
func (f *FS) recordFirstPageLocked(dir string, page s3.ListPage, start time.Time) {
	if f.cfg.MetadataTTL <= 0 || f.changedSinceLocked(dir, start) {
		return
	}
	dl := f.dirListLocked(dir)
	if !start.After(dl.listedAt) || dl.running != nil || start.Before(dl.tooBig) {
		return
	}
	l, complete, upTo := listdir.Page(f.prefix, dir, page)
	entries := l.Names.Entries()
	var tail map[string]s3.ObjectInfo
	for _, e := range entries {
		if !complete && !keymap.Covered(e.Name, upTo) {
			// A later page may still make it a directory (K4): decided with the rest.
			if info, isObject := l.Objects[e.Name]; isObject {
				if tail == nil {
					tail = map[string]s3.ObjectInfo{}
				}
				tail[e.Name] = info
			}
			continue
		}
		info, isObject := l.Objects[e.Name]
		f.recordListedLocked(keymap.Join(dir, e.Name), e.Kind, info, isObject, start)
	}
	if !complete && upTo == "" {
		return // an empty page that says more follow covers no name ("" would mean all)
	}
	dl.listedAt, dl.absentTil, dl.upTo, dl.token, dl.tail = start, start.Add(min(f.cfg.NegativeTTL, f.cfg.MetadataTTL)), upTo, "", tail
	if !complete {
		dl.token = page.NextContinuationToken
	}
	a := &aheadList{done: make(chan struct{}), queued: start, start: start, listing: &l.Names, objects: l.Objects, started: true}
	close(a.done)
	if complete {
		dl.upTo = ""
		f.recordOrderLocked(dir, entries, start)
	} else {
		// A readdir that follows goes on from the second page.
		a.token, a.upTo = page.NextContinuationToken, upTo
	}
	// Half the slots at most: the lookups of a path's directories must not crowd out the
	// listings a walk makes ahead (walkLocked), since most of theirs are never read.
	if len(f.ahead) >= aheadMax/2 {
		f.trimAheadLocked(f.clock.Now())
	}
	if f.ahead[dir] == nil && len(f.ahead) < aheadMax/2 {
		f.ahead[dir] = a
	}
}

// fromListingLocked answers a lookup of path in directory dir from a listing when the
// directory qualifies: found, absent, or ok=false to resolve the name on its own. It may run
// the listing, or wait for one another lookup runs. Called and returns with f.mu held.
// LOCKS_REQUIRED(f.mu)
func (f *FS) fromListingLocked(ctx context.Context, dir, path string) (res resolution, ok bool, err error) {
	if f.cfg.MetadataTTL <= 0 {
		// --metadata-ttl 0: nothing a listing says outlives the lookup that read it, so a
		// listing (up to ten pages, again for every lookup) or a walk's page read ahead
		// answers no other name. Each name costs its own HEAD and LIST.
		return resolution{}, false, nil
	}
	counted := f.dirListLocked(dir)
	counted.looking++
	defer func() { counted.looking-- }()
	for waited := false; ; waited = true {
		now := f.clock.Now()
		// Not counted, if another lookup's trim dropped the one counted while this waited:
		// it then takes no walk (looking is 0), only the listing or its own lookup.
		dl := f.dirListLocked(dir)
		if now.Before(dl.tooBig) {
			return f.fromWindowLocked(ctx, dir, path, dl)
		}
		if in := f.freshChildLocked(path, now); in != nil {
			return foundAt(in), true, nil
		}
		if f.absentFromListingLocked(dir, path, now) {
			return resolution{}, true, nil
		}
		if waited {
			return resolution{}, false, nil // the listing we waited for says nothing fresh
		}
		if dl.running != nil {
			f.waitLocked(ctx, dl.running)
			continue
		}
		// Misses in key order, one at a time (`stat` of every name, `ls -l` after a readdir
		// whose first pages' answers expired, a sorted manifest) are answered a page at a
		// time from the first of them, as in a directory too big to list: each page as of
		// its own request, and only the pages the walk reaches are read. A listing of the
		// whole directory answered nothing until its last page came, and then only for what
		// was left of the TTL. Lookups that come together keep sharing one listing.
		if dl.looking == 1 {
			if res, ok, walking, err := f.windowLocked(ctx, dir, path, dl, 1); walking || ok || err != nil {
				return res, ok, err
			}
			if dl.running != nil || f.dirLists[dir] != dl {
				// It waited for a page of the walk meanwhile, and another lookup started
				// a listing, or the directory's state was dropped: look again.
				continue
			}
			now = f.clock.Now()
		}
		// Only a whole listing makes a directory hot: the first page its own lookup read
		// (recordFirstPageLocked) says nothing of whether its names are looked up.
		hot := !dl.listedAt.IsZero() && dl.upTo == "" && now.Sub(dl.listedAt) < listHot
		if !hot {
			if now.Sub(dl.firstMiss) > listMissWindow {
				dl.misses, dl.firstMiss = 0, now
			}
			dl.misses++
			if dl.misses < listAfterMisses {
				return resolution{}, false, nil
			}
		}
		found, complete, err := f.listForLookupsLocked(ctx, dir, path, dl)
		if err != nil || !complete || !found.found && f.knownLocked(path) {
			return resolution{}, false, err
		}
		return found, true, nil
	}
}

// waitLocked releases f.mu until done is closed or ctx ends.
// LOCKS_REQUIRED(f.mu)
func (f *FS) waitLocked(ctx context.Context, done <-chan struct{}) {
	f.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
	f.mu.Lock()
}

// foundAt is the lookup answer for in, a child whose metadata is fresh.
func foundAt(in *inode) resolution {
	return resolution{found: true, kind: in.kind, info: s3.ObjectInfo{Size: in.size, LastModified: in.mtime, ETag: in.etag}}
}

// listForLookupsLocked lists dir, records every entry as list does for readdir, and says what
// the listing holds at path. complete is false for a directory too big to list for lookups.
// f.mu is released while the pages are read.
// LOCKS_REQUIRED(f.mu)
func (f *FS) listForLookupsLocked(ctx context.Context, dir, path string, dl *dirList) (res resolution, complete bool, err error) {
	done := make(chan struct{})
	dl.running = done
	start, changes := f.clock.Now(), dl.changes
	began := start
	// Go on from the first page the directory's lookup read while what it says holds and
	// this mount has changed nothing in the directory since: one round trip less. What is
	// read is then valid from when that page was read.
	token, tail := "", map[string]s3.ObjectInfo(nil)
	if dl.upTo != "" && dl.token != "" && start.Before(dl.absentTil) && !f.changedSinceLocked(dir, dl.listedAt) {
		token, tail, start = dl.token, dl.tail, dl.listedAt
	}
	f.mu.Unlock()
	pages := 0
	tooBig := func(*keymap.Listing) bool {
		pages++
		return pages >= listPagesMax
	}
	l, err := listdir.ReadFrom(ctx, f.store, f.prefix, dir, token, tooBig)
	if err != nil && token != "" {
		// A store may refuse a continuation token it gave out a while ago: read it all.
		token, tail, start, pages = "", nil, f.clock.Now(), 0
		l, err = listdir.ReadFrom(ctx, f.store, f.prefix, dir, "", tooBig)
	}
	var listing *keymap.Listing
	var objects map[string]s3.ObjectInfo
	if err != nil {
		err = storeError("lookup", dir, err)
	} else {
		listing, objects = &l.Names, l.Objects
		for name, info := range tail {
			listing.AddObject(name)
			objects[name] = info
		}
	}
	f.mu.Lock()
	dl.running = nil
	close(done)
	dl.misses = 0
	switch {
	case err != nil:
		return resolution{}, false, err
	case pages >= listPagesMax:
		dl.tooBig = f.clock.Now().Add(tooBigFor)
		return resolution{}, false, nil
	}
	_, name := keymap.Split(path)
	for _, e := range listing.Entries() {
		p := keymap.Join(dir, e.Name)
		in := f.inodes.getOrCreate(p, e.Kind)
		info, isObject := objects[e.Name]
		if dl.changes != changes {
			// This mount changed the directory while the pages were read: the listing
			// answers this lookup and records nothing.
		} else if isObject && in.writer == nil {
			f.setMetaLocked(in, info, start)
		} else if e.Kind == keymap.Dir {
			f.setMetaLocked(in, s3.ObjectInfo{}, start)
		}
		delete(f.negative, p)
		if e.Name == name {
			res = resolution{found: true, kind: e.Kind}
			if e.Kind == keymap.File {
				res.info = info
			}
		}
	}
	if token == "" { // a listing that went on from the first page holds only the rest
		f.recordOrderLocked(dir, listing.Entries(), start)
	}
	// Absent answers hold even if this mount changed the directory meanwhile: they are given
	// only for names it never had (absentFromListingLocked).
	// Names the listing had are on fresh inodes for the metadata TTL; absent answers must not
	// outlast them, or a name whose inode was swept would be taken for absent.
	dl.listedAt, dl.absentTil, dl.upTo, dl.token, dl.tail = start, start.Add(min(f.cfg.NegativeTTL, f.cfg.MetadataTTL)), "", "", nil
	// Timed from this listing's own start, not from the first page it went on from; and
	// ttl-ttl/4, since 3*ttl overflows for --metadata-ttl indefinite.
	if now := f.clock.Now(); now.Sub(began) >= f.cfg.MetadataTTL-f.cfg.MetadataTTL/4 {
		// The store's pages are too slow for this directory to be listed for lookups: its
		// answers were nearly expired when the last page came, and each lookup after them
		// would list it again, to the same end. A walk in key order is then answered a page
		// at a time, each page as of its own request (dirwindow.go), as in a directory too big
		// to list; other lookups go to the store on their own.
		dl.tooBig = now.Add(tooBigFor)
	}
	return res, true, nil
}

// knownLocked reports whether path is a name the mount has an inode for (the kernel may hold
// it) or changed itself lately (changedLocked). A listing's silence does not make such a name
// absent; the name is asked for on its own (HEAD), since a listing may lag a write the store
// has already acknowledged, and the kernel may still hold the inode. Other names keep the
// listing's answer.
// LOCKS_REQUIRED(f.mu)
func (f *FS) knownLocked(path string) bool {
	if f.inodes.lookup(path, keymap.File) != nil || f.inodes.lookup(path, keymap.Dir) != nil {
		return true
	}
	t, ok := f.changed[path]
	return ok && f.clock.Now().Before(t.Add(f.changedKeep()))
}

// listingLag is how long after a write a listing may still not show it (MinIO under load).
const listingLag = 10 * time.Second

// changedKeep is how long a name this mount changed is remembered: as long as a listing that
// started before the change, or within listingLag after it, may answer it absent.
func (f *FS) changedKeep() time.Duration { return f.cfg.NegativeTTL + listingLag }

// changedMax bounds the names remembered as changed. Past it they are forgotten and every
// listing's absent answers with them, which is what remembering them protects.
const changedMax = 1 << 20

// changedLocked remembers that this mount made, committed or removed path and the directories
// above it.
// LOCKS_REQUIRED(f.mu)
func (f *FS) changedLocked(path string, now time.Time) {
	if len(f.changed) >= f.changedSweepAt {
		for p, t := range f.changed {
			if !now.Before(t.Add(f.changedKeep())) {
				delete(f.changed, p)
			}
		}
		if len(f.changed) >= changedMax {
			clear(f.changed)
			for _, dl := range f.dirLists {
				dl.absentTil = time.Time{}
			}
		}
		f.changedSweepAt = max(sweepMin, 2*len(f.changed))
	}
	for p := path; ; {
		f.changed[p] = now
		if p == "" {
			return
		}
		p, _ = keymap.Split(p)
	}
}

// dirListLocked is what lookups know of dir's listing, made empty if there is none. The
// trim comes before the new one goes in, so that it is not trimmed at once.
// LOCKS_REQUIRED(f.mu)
func (f *FS) dirListLocked(dir string) *dirList {
	dl := f.dirLists[dir]
	if dl == nil {
		f.trimDirListsLocked()
		dl = &dirList{}
		f.dirLists[dir] = dl
	}
	return dl
}

// trimDirListsLocked keeps the table of directories small: entries with nothing running and
// nothing fresh are dropped once it grows past maxDirLists.
// LOCKS_REQUIRED(f.mu)
func (f *FS) trimDirListsLocked() {
	const maxDirLists = 1024
	if len(f.dirLists) <= maxDirLists {
		return
	}
	now := f.clock.Now()
	for d, dl := range f.dirLists {
		// A walk's pages are kept while the last of them can still answer.
		walking := len(dl.wins) > 0 && now.Before(dl.wins[len(dl.wins)-1].at.Add(f.cfg.MetadataTTL))
		if dl.running == nil && dl.winRunning == nil && dl.looking == 0 && !walking && now.Sub(dl.listedAt) > listHot && now.Sub(dl.firstMiss) > listMissWindow && now.After(dl.tooBig) {
			delete(f.dirLists, d)
		}
	}
}
