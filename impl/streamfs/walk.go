package streamfs

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Listing ahead of a walk. find, du, rsync, tar and a loader's scan read a directory, then its
// subdirectories one after another: a LIST round trip each, in series, so a tree of 100
// directories costs 100 round trips however fast the store answers. When a directory is read
// within walkWindow of its parent, the reads are a walk: the mount lists the parent's next
// walkAhead subdirectories as the read starts, and this directory's first walkAhead once it
// is listed, walkParallel at a time, and a
// readdir takes a listing made ahead if it started within the metadata TTL (rule S3), so what
// it shows is as fresh as a lookup's answer may be. Such a listing is used once; one this
// mount changed the directory under (a create, a commit, a delete) is dropped and the
// directory listed again.
const (
	walkWindow   = 5 * time.Second
	walkAhead    = 32
	walkParallel = 32
	// walkDirsMax bounds the directories whose subdirectory names are remembered, and
	// walkNamesMax the names remembered for one.
	walkDirsMax  = 256
	walkNamesMax = 4096
	// aheadMax bounds the listings made ahead and not yet read, and aheadPages the pages of
	// one (a bigger directory is listed by its own readdir).
	aheadMax     = 48
	aheadPages   = 2
	aheadTimeout = time.Minute
)

// walkDir is a directory a readdir listed: when, and its subdirectories in listing order.
type walkDir struct {
	at      time.Time
	subdirs []string
}

// aheadList is a listing made ahead of a walk. start, listing, objects and err are written
// before done is closed and read only after it.
type aheadList struct {
	done    chan struct{}
	queued  time.Time // constant
	start   time.Time
	listing *keymap.Listing
	objects map[string]s3.ObjectInfo
	err     error
	// token: the listing is the directory's first page only, read by its lookup
	// (recordFirstPageLocked), and the pages from this continuation token on are still to be
	// read; upTo is the greatest relative key or prefix the page showed.
	token, upTo string
	// void: this mount changed the directory after the listing was queued, or a readdir
	// came before it started and listed itself. GUARDED_BY(FS.mu)
	void bool
	// started: the listing has its slot and runs. GUARDED_BY(FS.mu)
	started bool
	// taken: a readdir took it. GUARDED_BY(FS.mu). Only one may: a dirStream takes its
	// maps over and changes them.
	taken bool
}

var errAheadTooBig = errors.New("too big to list ahead")

// takeAhead returns the listing made ahead for dir, if there is one that may still be used
// (its start is when it started). It waits for one that is running; one still waiting for its slot
// is dropped, since listing now is sooner. The entry stays in f.ahead while it is waited
// for, so that a change this mount makes meanwhile voids it.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) takeAhead(ctx context.Context, dir string) (*aheadList, bool) {
	f.mu.Lock()
	a := f.ahead[dir]
	if a != nil && !a.started {
		a.void = true
		delete(f.ahead, dir)
		a = nil
	}
	f.mu.Unlock()
	if a == nil {
		return nil, false
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		return nil, false
	}
	f.mu.Lock()
	void, taken := a.void, a.taken
	a.taken = true
	if f.ahead[dir] == a {
		delete(f.ahead, dir)
	}
	f.mu.Unlock()
	if void || taken || a.err != nil || !f.clock.Now().Before(a.start.Add(f.cfg.MetadataTTL)) {
		return nil, false
	}
	return a, true
}

// walkStartLocked is told that a readdir of dir starts: if dir's parent was read within
// walkWindow, the read is part of a walk, and the listings of dir's next walkAhead siblings
// start now, beside dir's own listing rather than after it.
// LOCKS_REQUIRED(f.mu)
func (f *FS) walkStartLocked(dir string, now time.Time) {
	if f.cfg.MetadataTTL <= 0 || dir == "" {
		return
	}
	parent, name := keymap.Split(dir)
	p := f.walkDirs[parent]
	if p == nil || now.Sub(p.at) > walkWindow {
		return
	}
	var next []string
	if i := sort.SearchStrings(p.subdirs, name); i < len(p.subdirs) && p.subdirs[i] == name {
		for _, s := range p.subdirs[i+1 : min(len(p.subdirs), i+1+walkAhead)] {
			next = append(next, keymap.Join(parent, s))
		}
	}
	f.listAheadLocked(next, now)
}

// walkLocked records that dir was read, with its subdirectories, and if the read is part of a
// walk (walkStartLocked) starts the listings of its first subdirectories.
// LOCKS_REQUIRED(f.mu)
func (f *FS) walkLocked(dir string, entries []keymap.Entry, now time.Time) {
	if f.cfg.MetadataTTL <= 0 {
		return // nothing listed ahead could be used
	}
	var subdirs []string
	for _, e := range entries {
		if e.Kind == keymap.Dir && len(subdirs) < walkNamesMax {
			subdirs = append(subdirs, e.Name)
		}
	}
	f.trimWalkLocked(now)
	parentWalked := false
	if dir != "" { // the root has no parent: a walk from it shows at its first subdirectory
		parent, _ := keymap.Split(dir)
		p := f.walkDirs[parent]
		parentWalked = p != nil && now.Sub(p.at) <= walkWindow
	}
	f.walkDirs[dir] = &walkDir{at: now, subdirs: subdirs}
	if !parentWalked {
		return
	}
	var next []string
	for _, s := range subdirs[:min(len(subdirs), walkAhead)] {
		next = append(next, keymap.Join(dir, s))
	}
	f.listAheadLocked(next, now)
}

// listAheadLocked starts listing dirs ahead of their readdirs, within aheadMax.
// LOCKS_REQUIRED(f.mu)
func (f *FS) listAheadLocked(dirs []string, now time.Time) {
	for _, d := range dirs {
		if f.ahead[d] != nil || len(f.ahead) >= aheadMax {
			continue
		}
		a := &aheadList{done: make(chan struct{}), queued: now}
		f.ahead[d] = a
		go f.listAhead(d, a)
	}
}

// listAhead lists dir for a readdir to come, walkParallel at a time.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) listAhead(dir string, a *aheadList) {
	defer close(a.done)
	f.aheadSlots <- struct{}{}
	defer func() { <-f.aheadSlots }()
	f.mu.Lock()
	void := a.void || f.ahead[dir] != a
	a.started = !void
	f.mu.Unlock()
	if void {
		a.err = errAheadTooBig // dropped or taken meanwhile: not worth a request
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), aheadTimeout)
	defer cancel()
	a.start = f.clock.Now()
	pages := 0
	a.listing, a.objects, _, a.err = f.listDir(ctx, "readdir", dir, func(*keymap.Listing) bool {
		pages++
		return pages >= aheadPages
	})
	if a.err == nil && pages >= aheadPages {
		a.listing, a.objects, a.err = nil, nil, errAheadTooBig
	}
}

// trimWalkLocked forgets walks that ended and listings made ahead that were not read in time.
// LOCKS_REQUIRED(f.mu)
func (f *FS) trimWalkLocked(now time.Time) {
	if len(f.walkDirs) >= walkDirsMax {
		for d, w := range f.walkDirs {
			if now.Sub(w.at) > walkWindow || len(f.walkDirs) >= walkDirsMax {
				delete(f.walkDirs, d)
			}
		}
	}
	if len(f.ahead) >= aheadMax {
		f.trimAheadLocked(now)
	}
}

// trimAheadLocked forgets the listings made ahead that are void or were not read within a
// walk's pause: the walk went elsewhere, or the lookup that read a first page was not
// followed by a readdir. A listing still running finds itself dropped, or ends unread.
// LOCKS_REQUIRED(f.mu)
func (f *FS) trimAheadLocked(now time.Time) {
	for d, a := range f.ahead {
		if a.void || now.Sub(a.queued) > walkWindow {
			delete(f.ahead, d)
		}
	}
}

// aheadChangedLocked voids the listings made ahead of path's ancestors: this mount changed
// what they hold.
// LOCKS_REQUIRED(f.mu)
func (f *FS) aheadChangedLocked(path string) {
	for dir := path; dir != ""; {
		dir, _ = keymap.Split(dir)
		if a := f.ahead[dir]; a != nil {
			a.void = true
		}
	}
}
