package streamfs

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mount-s3/mount-s3/impl/vfs"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/streamrule"
)

// LookupListed is Lookup for an entry a ReadDir has just returned (READDIRPLUS). It never
// sends a request: it answers from what the listing recorded while that is fresh (a short
// --metadata-ttl may have run out during a long listing), and otherwise fails, which leaves
// the entry to a LOOKUP of its own. So does a file being written, whose lookup checks the
// bucket for a directory that now shadows it.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) LookupListed(_ context.Context, parent vfs.InodeID, name string) (vfs.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := f.inodes.get(parent)
	if dir == nil || dir.kind != keymap.Dir {
		return vfs.Entry{}, vfs.NewError("lookup", name, vfs.CodeBadHandle, "unknown parent directory")
	}
	path := keymap.Join(dir.path, name)
	if in := f.local[path]; in != nil && in.kind == keymap.File {
		return vfs.Entry{}, vfs.NewError("lookup", path, vfs.CodeNotFound, "a file being written is looked up on its own")
	}
	in := f.freshChildLocked(path, f.clock.Now())
	if in == nil {
		return vfs.Entry{}, vfs.NewError("lookup", path, vfs.CodeNotFound, "what the listing said has expired")
	}
	in.lookups.Add()
	return f.entryLocked(in), nil
}

// Lookup resolves name in directory parent and counts one kernel reference to the result.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Lookup(ctx context.Context, parent vfs.InodeID, name string) (vfs.Entry, error) {
	for tries := 1; ; tries++ {
		e, again, err := f.lookup(ctx, parent, name, tries < 3)
		if !again {
			return e, err
		}
	}
}

// lookup is one try of Lookup. again: the store said the name is absent, but this mount made
// or changed it while the store was asked (a create and its commit need no lock on the
// directory the kernel's revalidation of a name skips), so the answer is stale; asked again
// if mayRetry, and in any case never kept as a negative entry.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) lookup(ctx context.Context, parent vfs.InodeID, name string, mayRetry bool) (_ vfs.Entry, again bool, _ error) {
	f.mu.Lock()
	dir := f.inodes.get(parent)
	if dir == nil {
		f.mu.Unlock()
		return vfs.Entry{}, false, vfs.NewError("lookup", name, vfs.CodeBadHandle, "unknown parent inode")
	}
	if dir.kind != keymap.Dir {
		f.mu.Unlock()
		return vfs.Entry{}, false, vfs.NewError("lookup", name, vfs.CodeNotDir, "parent is not a directory")
	}
	path := keymap.Join(dir.path, name)
	if err := vfs.CheckName("lookup", path, name, vfs.CodeNotFound); err != nil {
		f.mu.Unlock()
		return vfs.Entry{}, false, err
	}
	now := f.clock.Now()
	if in := f.local[path]; in != nil && in.kind == keymap.File {
		f.mu.Unlock()
		e, err := f.lookupWriting(ctx, in, path)
		return e, false, err
	}
	f.refreshAheadLocked(dir.path, now)
	if in := f.freshChildLocked(path, now); in != nil {
		f.walkedLocked(dir.path, name)
		in.lookups.Add()
		e := f.entryLocked(in)
		f.mu.Unlock()
		return e, false, nil
	}
	if until, ok := f.negative[path]; ok {
		if now.Before(until) {
			f.mu.Unlock()
			return vfs.Entry{}, false, vfs.NewError("lookup", path, vfs.CodeNotFound, "no such object or prefix (cached)")
		}
		delete(f.negative, path)
	}
	res, listed, err := f.fromListingLocked(ctx, dir.path, path)
	if err != nil {
		f.mu.Unlock()
		return vfs.Entry{}, false, err
	}
	if !listed {
		f.mu.Unlock()
		if res, err = f.resolve(ctx, path); err != nil {
			return vfs.Entry{}, false, err
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	if kind, found := keymap.ResolveWithLocal(res.kind, res.found, keymap.Local{Below: f.hasLocalBelowLocked(path)}); found && (!res.found || res.kind != kind) {
		res = resolution{found: true, kind: kind} // a local inode keeps its ancestors
	} else if listed && res.found {
		// The listing recorded it, valid from when the listing started (S3).
		if in := f.freshChildLocked(path, f.clock.Now()); in != nil {
			in.lookups.Add()
			return f.entryLocked(in), false, nil
		}
	}
	if !res.found {
		if !listed && f.changedSinceLocked(path, now) {
			if mayRetry {
				return vfs.Entry{}, true, nil
			}
			return vfs.Entry{}, false, vfs.NewError("lookup", path, vfs.CodeNotFound, "no such object or prefix")
		}
		// A listing's absence already lasts as long as S3 allows; a lookup's starts now.
		if f.cfg.NegativeTTL > 0 && !listed {
			f.setNegativeLocked(path, now)
		}
		return vfs.Entry{}, false, vfs.NewError("lookup", path, vfs.CodeNotFound, "no such object or prefix")
	}
	in := f.inodes.getOrCreate(path, res.kind)
	f.setMetaLocked(in, res.info, now)
	if !listed && res.kind == keymap.Dir && !res.firstAt.IsZero() {
		f.recordFirstPageLocked(path, res.first, res.firstAt)
	}
	in.lookups.Add()
	return f.entryLocked(in), false, nil
}

// lookupWriting resolves the name of a file being written. A directory of the same name
// that appeared in the bucket meanwhile shadows it (K4), as it will shadow the object the
// file becomes, and so does a local directory made below it meanwhile.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) lookupWriting(ctx context.Context, file *inode, path string) (vfs.Entry, error) {
	res, err := f.resolve(ctx, path)
	if err != nil {
		return vfs.Entry{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	in := file
	if kind, _ := keymap.ResolveWithLocal(res.kind, res.found, f.localAtLocked(path)); kind == keymap.Dir {
		in = f.inodes.getOrCreate(path, keymap.Dir)
		f.setMetaLocked(in, res.info, f.clock.Now())
	}
	in.lookups.Add()
	return f.entryLocked(in), nil
}

// freshChildLocked returns the local inode at path, or else the live inode at path whose
// metadata is still valid, preferring a directory (K4).
// LOCKS_REQUIRED(f.mu)
func (f *FS) freshChildLocked(path string, now time.Time) *inode {
	if in := f.local[path]; in != nil {
		return in
	}
	for _, k := range []keymap.Kind{keymap.Dir, keymap.File} {
		if in := f.inodes.lookup(path, k); in != nil && in.validUntil.after(now) {
			return in
		}
	}
	return nil
}

// setMetaLocked records what the store said about in at time now (when the request or listing
// that said it started), valid for the metadata TTL from then, unless the mount already knows
// something newer: a listing made ahead of a walk, or a lookup that crossed a newer one, must
// not roll back what a later lookup, open or commit of this mount saw.
// LOCKS_REQUIRED(f.mu)
func (f *FS) setMetaLocked(in *inode, info s3.ObjectInfo, now time.Time) {
	if in.metaAt.after(now) {
		return
	}
	in.metaAt = stampOf(now)
	if in.kind == keymap.File {
		in.size, in.mtime, in.etag = info.Size, info.LastModified, info.ETag
	}
	in.validUntil = stampOf(now.Add(f.cfg.MetadataTTL))
}

// attrExpiry is how long the kernel may keep in's attributes: the metadata TTL, but not at
// all while the file is being written. Its size then is only where the writer has got to,
// and a kernel that kept it (its own writes and this answer race) would cut a later
// reader's reads at it; an expired size is asked again before a read goes past it.
// LOCKS_REQUIRED(f.mu)
func (f *FS) attrExpiry(in *inode) time.Time {
	if in.writer != nil {
		return time.Time{}
	}
	return f.clock.Now().Add(f.cfg.MetadataTTL)
}

// entryLocked is the lookup answer for in.
// LOCKS_REQUIRED(f.mu)
func (f *FS) entryLocked(in *inode) vfs.Entry {
	return vfs.Entry{Attr: f.attrOf(in), Expires: f.attrExpiry(in), Generation: in.gen}
}

type resolution struct {
	found bool
	kind  keymap.Kind
	info  s3.ObjectInfo
	// first is the first page of path's own listing, read by resolve to see whether keys lie
	// below it (nil when none do), and firstAt when its request started.
	first   s3.ListPage
	firstAt time.Time
}

// resolve asks the store what path is: it HEADs the file key and lists the directory key at
// the same time, and lets keymap.ResolveLookup decide (K4). The listing is one delimited page
// of the directory: it costs the round trip a one-key LIST costs, and when path is a
// directory it already shows its children, which answer their lookups and the directory's
// readdir (recordFirstPageLocked) instead of a round trip more.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) resolve(ctx context.Context, path string) (resolution, error) {
	var (
		wg      sync.WaitGroup
		info    s3.ObjectInfo
		headErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		info, headErr = f.store.Head(ctx, keymap.FileKey(f.prefix, path))
	}()
	start := f.clock.Now()
	page, listErr := f.store.List(ctx, s3.ListInput{Prefix: keymap.DirKey(f.prefix, path), Delimiter: keymap.Delimiter, MaxKeys: firstPageKeys})
	// A store may end a page early: one that is empty but truncated still says keys follow.
	below := listErr == nil && (len(page.Objects) > 0 || len(page.CommonPrefixes) > 0 || page.NextContinuationToken != "")
	wg.Wait()

	if listErr != nil {
		return resolution{}, storeError("lookup", path, listErr)
	}
	exists := headErr == nil
	if headErr != nil && !errors.Is(headErr, s3.ErrNotFound) {
		return resolution{}, storeError("lookup", path, headErr)
	}
	kind, found := keymap.ResolveLookup(exists, below)
	res := resolution{found: found, kind: kind, info: info}
	if below {
		res.first, res.firstAt = page, start
	}
	return res, nil
}

// GetAttr returns the attributes of an inode, asking the store again once the cached metadata
// is older than the metadata TTL (S3).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) GetAttr(ctx context.Context, id vfs.InodeID) (vfs.Attr, time.Time, error) {
	f.mu.Lock()
	in := f.inodes.get(id)
	if in == nil {
		f.mu.Unlock()
		return vfs.Attr{}, time.Time{}, vfs.NewError("getattr", "", vfs.CodeBadHandle, "unknown inode")
	}
	now := f.clock.Now()
	if in.kind == keymap.Dir || in.local || in.validUntil.after(now) {
		a, exp := f.attrOf(in), f.attrExpiry(in)
		f.mu.Unlock()
		return a, exp, nil
	}
	path := in.path
	f.mu.Unlock()

	info, err := f.store.Head(ctx, keymap.FileKey(f.prefix, path))
	if err != nil {
		return vfs.Attr{}, time.Time{}, storeError("getattr", path, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setMetaLocked(in, info, now)
	return f.attrOf(in), now.Add(f.cfg.MetadataTTL), nil
}

// Forget drops n kernel references to an inode.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Forget(id vfs.InodeID, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// A local inode (mkdir'd directory, file being written) exists only in memory: it stays
	// live until it is removed or committed, or its number would point nowhere.
	if in := f.inodes.get(id); in != nil && in.local {
		in.lookups.Forget(n)
		return
	}
	f.inodes.forget(id, n)
}

// localAtLocked is what the mount holds locally at path (keymap.ResolveWithLocal).
// LOCKS_REQUIRED(f.mu)
func (f *FS) localAtLocked(path string) keymap.Local {
	l := keymap.Local{Below: f.hasLocalBelowLocked(path)}
	if in := f.local[path]; in != nil {
		l.Is, l.Kind = true, in.kind
	}
	return l
}

// targetOf is what path names, for the streaming rules: what the mount holds locally and,
// unless a local directory decides it, what the bucket holds (K4 over both).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) targetOf(ctx context.Context, path string) (streamrule.Target, error) {
	f.mu.Lock()
	l := f.localAtLocked(path)
	f.mu.Unlock()
	var res resolution
	if !l.Below && !(l.Is && l.Kind == keymap.Dir) {
		var err error
		if res, err = f.resolve(ctx, path); err != nil {
			if l.Is {
				// A file being written: what is known locally decides, as the bucket
				// could only add a directory that shadows it.
				return streamrule.Target{Exists: true, BeingWritten: true}, nil
			}
			return streamrule.Target{}, err
		}
	}
	kind, found := keymap.ResolveWithLocal(res.kind, res.found, l)
	return streamrule.Target{Exists: found, Dir: found && kind == keymap.Dir, BeingWritten: found && kind == keymap.File && l.Is}, nil
}

// hasLocalBelowLocked reports whether a local inode lies below path.
// LOCKS_REQUIRED(f.mu)
func (f *FS) hasLocalBelowLocked(path string) bool {
	for p := range f.local {
		if keymap.Below(p, path) {
			return true
		}
	}
	return false
}

// setNegativeLocked caches that path does not exist, for the negative TTL. Expired entries are
// swept when the cache has doubled since the last sweep, so a program probing many missing
// names does not grow it for good.
// LOCKS_REQUIRED(f.mu)
// changedSinceLocked reports whether this mount made, committed or removed path at or after t.
// LOCKS_REQUIRED(f.mu)
func (f *FS) changedSinceLocked(path string, t time.Time) bool {
	ct, ok := f.changed[path]
	return ok && !ct.Before(t)
}

func (f *FS) setNegativeLocked(path string, now time.Time) {
	if len(f.negative) >= f.negativeSweepAt {
		for p, until := range f.negative {
			if !now.Before(until) {
				delete(f.negative, p)
			}
		}
		f.negativeSweepAt = max(sweepMin, 2*len(f.negative))
	}
	f.negative[path] = now.Add(f.cfg.NegativeTTL)
}
