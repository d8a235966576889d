package streamfs

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/mount-s3/mount-s3/impl/vfs"

	"github.com/mount-s3/mount-s3/impl/listdir"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// OpenDir opens a directory for reading.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) OpenDir(ctx context.Context, id vfs.InodeID) (vfs.HandleID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.inodes.get(id)
	if in == nil {
		return 0, vfs.NewError("opendir", "", vfs.CodeBadHandle, "unknown inode")
	}
	if in.kind != keymap.Dir {
		return 0, vfs.NewError("opendir", in.path, vfs.CodeNotDir, "not a directory")
	}
	return f.addHandle(&vfs.DirHandle{Inode: id, Path: in.path}), nil
}

// ReadDir returns the entries after offset (0 for the start), "." and ".." first, then the
// names in byte order (K6). A read at offset 0 lists the directory afresh, so a listing is
// never older than S3 allows: fresh, or one made ahead of a walk within the metadata TTL
// (walk.go). A directory of several pages is handed out as its pages arrive (dirStream).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) ReadDir(ctx context.Context, h vfs.HandleID, offset uint64) ([]vfs.DirEntry, error) {
	dh, err := vfs.HandleOf[*vfs.DirHandle](&f.handles, h, "readdir")
	if err != nil {
		return nil, err
	}
	return dh.Read(ctx, offset, func() (vfs.Listing, error) { return f.list(ctx, dh.Path) })
}

// list starts reading directory dir from the store (or takes the listing made ahead of a
// walk, walk.go) and returns its first entries, and the way to the rest. What the listing
// says about each child is recorded, valid from when it started (S3), so that the lookups of
// an `ls -l` that follow need no request.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) list(ctx context.Context, dir string) (vfs.Listing, error) {
	s := &dirStream{f: f, dir: dir, start: f.clock.Now(), objects: map[string]s3.ObjectInfo{}}
	f.mu.Lock()
	f.walkStartLocked(dir, s.start)
	out := vfs.Listing{Parent: vfs.RootID}
	if dir != "" {
		parentPath, _ := keymap.Split(dir)
		out.Parent = f.inodes.number(parentPath, keymap.Dir)
	}
	// Local directories and files being written are listed too (S7, S4), once, as they
	// are when the listing starts; local inodes deeper down keep their ancestors as
	// directories.
	s.locals = map[string]keymap.Local{}
	for path, in := range f.local {
		name, deeper, ok := keymap.ChildToward(dir, path)
		if !ok {
			continue
		}
		l := s.locals[name]
		if deeper {
			l.Below = true
		} else {
			l.Is, l.Kind = true, in.kind
		}
		s.locals[name] = l
	}
	f.mu.Unlock()
	for name := range s.locals {
		s.localNames = append(s.localNames, name)
	}
	sort.Strings(s.localNames)

	a, ok := f.takeAhead(ctx, dir)
	if ok && a.token == "" {
		s.start, s.objects = a.start, a.objects
		out.Children = s.hand(a.listing.Entries(), "", false, true)
		return out, nil
	}
	var children []vfs.DirEntry
	done := false
	if ok {
		// The first page its lookup read: hand out what it settles, read on from there.
		s.start, s.objects, s.pending, s.upTo = a.start, a.objects, *a.listing, a.upTo
		s.pager, s.resumed = listdir.ResumePager(f.store, f.prefix, dir, a.token), true
		ready, stop, left := s.pending.TakeSettled(s.upTo)
		children = s.hand(ready, stop, left, false)
	} else {
		s.pager = listdir.NewPager(f.store, f.prefix, dir)
	}
	if len(children) == 0 {
		var err error
		if children, done, err = s.next(ctx); err != nil {
			return vfs.Listing{}, err
		}
	}
	out.Children = children
	if !done {
		out.More = s.next
	}
	return out, nil
}

// dirStream hands out one directory's listing as its pages arrive: after each page, the
// entries no later page can precede or change (keymap.TakeSettled, K6), so that `ls` of a
// directory of a million names shows its first names after one round trip, not a thousand.
// It is used by one DirHandle, whose lock serialises its calls.
type dirStream struct {
	f     *FS
	dir   string
	start time.Time // when the listing started: what it says is valid from then (S3)
	// seenAt: when the page that first showed each pending name started, for names the
	// pager read (others are as of start). A name is valid from its own page's request, not
	// the listing's first: a readdir of ten slow pages otherwise handed `ls -l` attributes
	// that had all expired by the time it asked for them, and every lstat went to the store.
	seenAt  map[string]time.Time
	pager   *listdir.Pager
	pending keymap.Listing           // names read and not handed out yet
	objects map[string]s3.ObjectInfo // their objects, by name
	upTo    string                   // the greatest relative key or prefix read so far
	// locals: what the mount holds locally in the directory, by name, and those names in
	// byte order, not handed out yet.
	locals     map[string]keymap.Local
	localNames []string
	// kept: the entries handed out that the walk and the small-file order need, bounded.
	kept        []keymap.Entry
	dirs, files int
	// resumed: the pager goes on from the first page a lookup read (its continuation
	// token). handed is the last name handed out; after a restart from the first page,
	// names up to skipTo were handed out already and are skipped.
	resumed        bool
	handed, skipTo string
}

// next reads pages until some entries can be handed out, or the last page is read (done).
// LOCKS_EXCLUDED(f.mu)
func (s *dirStream) next(ctx context.Context) ([]vfs.DirEntry, bool, error) {
	for {
		at := s.f.clock.Now()
		page, err := s.pager.Next(ctx)
		if err != nil && s.resumed && ctx.Err() == nil {
			// A store may refuse a continuation token it gave out a while ago: list from
			// the start, skipping what was handed out (a prefix of the names, K6).
			s.f.log.Info("listing the directory again from its first page", "path", "/"+s.dir, "error", err.Error())
			s.resumed, s.skipTo, s.start = false, s.handed, s.f.clock.Now()
			s.pager = listdir.NewPager(s.f.store, s.f.prefix, s.dir)
			s.pending, s.objects, s.upTo, s.seenAt = keymap.Listing{}, map[string]s3.ObjectInfo{}, "", nil
			continue
		}
		if err != nil {
			return nil, false, storeError("readdir", s.dir, err)
		}
		skip := func(name string) bool { return s.skipTo != "" && name <= s.skipTo }
		seen := func(name string) {
			if s.seenAt == nil {
				s.seenAt = map[string]time.Time{}
			}
			if _, ok := s.seenAt[name]; !ok {
				s.seenAt[name] = at
			}
		}
		for _, o := range page.Objects {
			rel := strings.TrimPrefix(o.Key, s.pager.DirKey)
			s.upTo = max(s.upTo, rel)
			if skip(rel) {
				continue
			}
			s.pending.AddObject(rel)
			if rel != "" {
				s.objects[rel] = o
				seen(rel)
			}
		}
		for _, p := range page.CommonPrefixes {
			rel := strings.TrimPrefix(p, s.pager.DirKey)
			s.upTo = max(s.upTo, rel)
			if skip(strings.TrimSuffix(rel, keymap.Delimiter)) {
				continue
			}
			s.pending.AddCommonPrefix(rel)
			seen(strings.TrimSuffix(rel, keymap.Delimiter))
		}
		done := s.pager.Done()
		var ready []keymap.Entry
		stop, left := "", false
		if done {
			ready = s.pending.Entries()
		} else {
			ready, stop, left = s.pending.TakeSettled(s.upTo)
		}
		children := s.hand(ready, stop, left, done)
		if len(children) > 0 || done {
			return children, done, nil
		}
	}
}

// hand merges the bucket's entries ready to go out with the local names that may go with
// them (settled, and before stop if left), records each, and returns them in byte order.
// LOCKS_EXCLUDED(f.mu)
func (s *dirStream) hand(ready []keymap.Entry, stop string, left, done bool) []vfs.DirEntry {
	f := s.f
	byName := make(map[string]int, len(ready))
	for i, e := range ready {
		byName[e.Name] = i
	}
	k := 0
	for _, name := range s.localNames {
		if !done && (!keymap.Settled(name, s.upTo) || left && name >= stop) {
			break
		}
		k++
		l := s.locals[name]
		if i, ok := byName[name]; ok {
			ready[i].Kind, _ = keymap.ResolveWithLocal(ready[i].Kind, true, l)
			continue
		}
		kind, _ := keymap.ResolveWithLocal(0, false, l)
		ready = append(ready, keymap.Entry{Name: name, Kind: kind})
	}
	s.localNames = s.localNames[k:]
	keymap.SortEntries(ready)

	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]vfs.DirEntry, 0, len(ready))
	for _, e := range ready {
		info, isObject := s.objects[e.Name]
		delete(s.objects, e.Name)
		at := s.start
		if t, ok := s.seenAt[e.Name]; ok {
			at = t
			delete(s.seenAt, e.Name)
		}
		in := f.recordListedLocked(keymap.Join(s.dir, e.Name), e.Kind, info, isObject, at)
		out = append(out, vfs.DirEntry{Inode: in.id, Name: e.Name, Kind: e.Kind})
		s.handed = e.Name
		switch {
		case e.Kind == keymap.Dir && s.dirs < walkNamesMax:
			s.dirs++
			s.kept = append(s.kept, e)
		case e.Kind == keymap.File && s.files < orderNamesMax:
			s.files++
			s.kept = append(s.kept, e)
		}
	}
	if done {
		f.walkLocked(s.dir, s.kept, f.clock.Now())
		f.recordOrderLocked(s.dir, s.kept, s.start)
	}
	return out
}

// recordListedLocked records what a listing that started at start says of the entry at path
// (an object's metadata, or a directory), unless this mount is writing the file, and drops a
// negative answer for it; it returns the entry's inode.
// LOCKS_REQUIRED(f.mu)
func (f *FS) recordListedLocked(path string, kind keymap.Kind, info s3.ObjectInfo, isObject bool, start time.Time) *inode {
	in := f.inodes.getOrCreate(path, kind)
	if isObject && in.writer == nil {
		f.setMetaLocked(in, info, start)
	} else if kind == keymap.Dir {
		f.setMetaLocked(in, s3.ObjectInfo{}, start)
	}
	delete(f.negative, path)
	return in
}

// ReleaseDir closes a directory handle.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) ReleaseDir(h vfs.HandleID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handles.Remove(h)
}

// listDir reads the delimited listing of directory path page by page (listdir.Read), until
// the end or until done says the pages so far are enough.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) listDir(ctx context.Context, op, path string, done func(*keymap.Listing) bool) (*keymap.Listing, map[string]s3.ObjectInfo, bool, error) {
	l, err := listdir.Read(ctx, f.store, f.prefix, path, done)
	if err != nil {
		return nil, nil, false, storeError(op, path, err)
	}
	return &l.Names, l.Objects, l.InBucket, nil
}
