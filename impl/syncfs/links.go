package syncfs

import (
	"context"
	"errors"

	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/vfs"
)

// Link makes name in parent another name of the file id (link(2)). The bucket has no links:
// the new name is its own object with the file's bytes and metadata, and every later change
// through any name is owed to every name (local.Layer.Link, docs/SYNC-MODE.md). The kernel
// gets the same inode back, so both names are one file to it too.
func (f *FS) Link(ctx context.Context, id vfs.InodeID, parent vfs.InodeID, name string) (vfs.Entry, error) {
	src, err := f.pathOf(id, "link")
	if err != nil {
		return vfs.Entry{}, err
	}
	dir, path, err := f.childPath(parent, name, "link")
	if err != nil {
		return vfs.Entry{}, err
	}
	if err := f.ensureDir(ctx, "link", dir, false); err != nil {
		return vfs.Entry{}, err
	}
	// The new name's object takes the file's attributes: record the bucket's first, and
	// its bytes, which a name needs local to share them.
	if err := f.settle(ctx, "link", src); err != nil {
		return vfs.Entry{}, err
	}
	var info local.Info
	for attempt := 0; ; attempt++ {
		if info, err = f.layer.Stat(src); err != nil {
			return vfs.Entry{}, localError("link", src, err)
		}
		if info.Kind == local.KindFile {
			if err := f.fetch(ctx, "link", src, info); err != nil {
				return vfs.Entry{}, err
			}
		}
		info, err = f.layer.Link(src, path)
		if err == nil {
			break
		}
		if !errors.Is(err, local.ErrNoData) || attempt == 3 {
			return vfs.Entry{}, localError("link", path, err)
		}
	}
	f.notify()
	f.mu.Lock()
	in := f.byID[id]
	if in == nil || in.unlinked {
		f.mu.Unlock()
		return f.entry(info), nil
	}
	defer f.mu.Unlock()
	// The new name is this inode's, whatever the table held at that path before (a name the
	// kernel still had for a file since removed); a symlink or special file gets its id now.
	if old := f.byPath[path]; old != nil && old != in {
		f.dropNameLocked(old, path)
	}
	f.setDataIDLocked(in, info.ID)
	if f.byPath[path] != in {
		in.links = append(in.links, path)
		f.byPath[path] = in
	}
	in.lookups.Add()
	in.last = attrOf(in.id, info)
	return vfs.Entry{Attr: in.last, Expires: f.cfg.Clock.Now().Add(f.cfg.AttrTTL)}, nil
}

// fileID is the id that identifies info's file among its names (0 for a directory).
func fileID(info local.Info) uint64 {
	if info.Kind == local.KindDir {
		return 0
	}
	return info.ID
}

// setDataIDLocked records in's local id.
// REQUIRES: f.mu held.
func (f *FS) setDataIDLocked(in *inode, dataID uint64) {
	if in.dataID == dataID {
		return
	}
	if in.dataID != 0 && f.byData[in.dataID] == in {
		delete(f.byData, in.dataID)
	}
	in.dataID = dataID
	if dataID != 0 {
		f.byData[dataID] = in
	}
}

// dropNameLocked removes name p of in: the inode is unlinked when it was its last.
// REQUIRES: f.mu held.
func (f *FS) dropNameLocked(in *inode, p string) {
	if f.byPath[p] == in {
		delete(f.byPath, p)
	}
	names := append([]string{in.path}, in.links...)
	keep := names[:0]
	for _, n := range names {
		if n != p {
			keep = append(keep, n)
		}
	}
	if len(keep) == len(names) {
		return
	}
	if len(keep) == 0 {
		in.unlinked = true
		in.last.Nlink = 0
		in.links = nil
		if in.dataID != 0 && f.byData[in.dataID] == in {
			delete(f.byData, in.dataID)
		}
		return
	}
	in.path, in.links = keep[0], keep[1:]
	if in.last.Nlink > 1 {
		in.last.Nlink--
	}
}

// renameName makes name from of in the name to.
func (in *inode) renameName(from, to string) {
	if in.path == from {
		in.path = to
		return
	}
	for i, n := range in.links {
		if n == from {
			in.links[i] = to
		}
	}
}
