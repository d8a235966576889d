package syncfs

import (
	"context"
	"errors"

	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// ensureDir imports dir's entries from the bucket if that was never done (Y1). For reads a
// failed import is logged and the local state served (the local layer works offline); must
// is set by operations that would be wrong on a partial view (rmdir, rename of a directory).
func (f *FS) ensureDir(ctx context.Context, op, dir string, must bool) error {
	if f.cfg.Importer == nil {
		return nil
	}
	err := f.cfg.Importer.EnsureDir(ctx, dir)
	if err == nil {
		return nil
	}
	if must || errors.Is(err, context.Canceled) {
		return localError(op, dir, err)
	}
	f.log.Warn("import of directory failed; serving what is local", "dir", "/"+dir, "error", err.Error())
	return nil
}

// ensureTree imports every directory at and below dir, so that a rename moves every object
// the bucket has there, not only those already seen (Y9).
func (f *FS) ensureTree(ctx context.Context, op, dir string) error {
	if err := f.ensureDir(ctx, op, dir, true); err != nil {
		return err
	}
	list, err := f.layer.List(dir)
	if err != nil {
		return localError(op, dir, err)
	}
	for _, e := range list {
		if e.Kind == local.KindDir {
			if err := f.ensureTree(ctx, op, e.Path); err != nil {
				return err
			}
		}
	}
	return nil
}

// OpenDir opens a directory, importing its entries on first access (Y1).
func (f *FS) OpenDir(ctx context.Context, id vfs.InodeID) (vfs.HandleID, error) {
	path, err := f.pathOf(id, "opendir")
	if err != nil {
		return 0, err
	}
	if err := f.ensureDir(ctx, "opendir", path, false); err != nil {
		return 0, err
	}
	return f.handles.Add(&vfs.DirHandle{Inode: id, Path: path}), nil
}

// ReadDir returns the entries from offset on.
func (f *FS) ReadDir(ctx context.Context, h vfs.HandleID, offset uint64) ([]vfs.DirEntry, error) {
	dh, err := vfs.HandleOf[*vfs.DirHandle](&f.handles, h, "readdir")
	if err != nil {
		return nil, err
	}
	return dh.Read(ctx, offset, func() (vfs.Listing, error) { return f.list(dh.Path) })
}

// list is directory dir's entries from the local layer, with the inode of each.
func (f *FS) list(dir string) (vfs.Listing, error) {
	list, err := f.layer.List(dir)
	if err != nil {
		return vfs.Listing{}, localError("readdir", dir, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	parent, _ := keymap.Split(dir)
	out := vfs.Listing{Parent: f.inodeForLocked(parent, 0, false).id, Children: make([]vfs.DirEntry, 0, len(list))}
	for _, e := range list {
		de := vfs.DirEntry{Inode: f.inodeForLocked(e.Path, fileID(e), e.Nlink > 1).id, Name: lastName(e.Path), Kind: keymap.File}
		if e.Kind == local.KindDir {
			de.Kind = keymap.Dir
		} else {
			de.Type = typeBits(e.Kind)
		}
		out.Children = append(out.Children, de)
	}
	return out, nil
}

// ReleaseDir closes a directory handle.
func (f *FS) ReleaseDir(h vfs.HandleID) { f.handles.Remove(h) }

func lastName(path string) string {
	_, name := keymap.Split(path)
	return name
}
