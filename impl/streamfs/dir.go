package streamfs

import (
	"context"

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
// (walk.go).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) ReadDir(ctx context.Context, h vfs.HandleID, offset uint64) ([]vfs.DirEntry, error) {
	dh, err := vfs.HandleOf[*vfs.DirHandle](&f.handles, h, "readdir")
	if err != nil {
		return nil, err
	}
	return dh.Read(offset, func() (vfs.Listing, error) { return f.list(ctx, dh.Path) })
}

// list reads the whole directory from the store, page by page (or takes the listing made
// ahead of a walk, walk.go), and records what the listing says about each child, valid from
// when it started (S3), so that the lookups of an `ls -l` that follow need no request.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) list(ctx context.Context, dir string) (vfs.Listing, error) {
	listing, objects, start, ok := f.takeAhead(ctx, dir)
	if !ok {
		start = f.clock.Now()
		var err error
		if listing, objects, _, err = f.listDir(ctx, "readdir", dir, nil); err != nil {
			return vfs.Listing{}, err
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	now := start
	out := vfs.Listing{Parent: vfs.RootID}
	if dir != "" {
		parentPath, _ := keymap.Split(dir)
		out.Parent = f.inodes.number(parentPath, keymap.Dir)
	}
	entries := listing.Entries()
	// Local directories and files being written are listed too (S7, S4), once.
	// A local directory shadows an object of its name, as any directory does (K4).
	listed := map[string]int{}
	for i, e := range entries {
		listed[e.Name] = i
	}
	// Local inodes deeper down keep their ancestors as directories.
	for path, in := range f.local {
		name, deeper, ok := keymap.ChildToward(dir, path)
		if !ok {
			continue
		}
		l := keymap.Local{Kind: in.kind, Is: !deeper, Below: deeper}
		if i, ok := listed[name]; ok {
			entries[i].Kind, _ = keymap.ResolveWithLocal(entries[i].Kind, true, l)
			continue
		}
		kind, _ := keymap.ResolveWithLocal(0, false, l)
		listed[name] = len(entries)
		entries = append(entries, keymap.Entry{Name: name, Kind: kind})
	}
	keymap.SortEntries(entries)
	for _, e := range entries {
		path := keymap.Join(dir, e.Name)
		in := f.inodes.getOrCreate(path, e.Kind)
		if info, ok := objects[e.Name]; ok && in.writer == nil {
			f.setMetaLocked(in, info, now)
		} else if e.Kind == keymap.Dir {
			f.setMetaLocked(in, s3.ObjectInfo{}, now)
		}
		delete(f.negative, path)
		out.Children = append(out.Children, vfs.DirEntry{Inode: in.id, Name: e.Name, Kind: e.Kind})
	}
	f.walkLocked(dir, entries, f.clock.Now())
	f.recordOrderLocked(dir, entries, now)
	return out, nil
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
