package syncfs

import (
	"context"
	"errors"
	"sync"

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

// dirHandle is an open directory. Its listing is taken at offset 0 (opendir, rewinddir) and
// later offsets index into it, so entries are neither skipped nor repeated while it is read.
type dirHandle struct {
	mu      sync.Mutex
	path    string
	entries []vfs.DirEntry
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
	return f.addHandle(&dirHandle{path: path}), nil
}

// ReadDir returns the entries from offset on.
func (f *FS) ReadDir(ctx context.Context, h vfs.HandleID, offset uint64) ([]vfs.DirEntry, error) {
	dh, ok := f.handle(h).(*dirHandle)
	if !ok {
		return nil, badHandle("readdir")
	}
	dh.mu.Lock()
	defer dh.mu.Unlock()
	if offset == 0 || dh.entries == nil {
		list, err := f.layer.List(dh.path)
		if err != nil {
			return nil, localError("readdir", dh.path, err)
		}
		dh.entries = make([]vfs.DirEntry, 0, len(list)+2)
		f.mu.Lock()
		parent, _ := keymap.Split(dh.path)
		dh.entries = append(dh.entries,
			vfs.DirEntry{Offset: 1, Inode: f.inodeForLocked(dh.path, 0, false).id, Name: ".", Kind: keymap.Dir},
			vfs.DirEntry{Offset: 2, Inode: f.inodeForLocked(parent, 0, false).id, Name: "..", Kind: keymap.Dir})
		for i, e := range list {
			de := vfs.DirEntry{Offset: uint64(i + 3), Inode: f.inodeForLocked(e.Path, fileID(e), e.Nlink > 1).id, Name: lastName(e.Path), Kind: keymap.File}
			if e.Kind == local.KindDir {
				de.Kind = keymap.Dir
			} else {
				de.Type = typeBits(e.Kind)
			}
			dh.entries = append(dh.entries, de)
		}
		f.mu.Unlock()
	}
	if offset >= uint64(len(dh.entries)) {
		return nil, nil
	}
	return dh.entries[offset:], nil
}

// ReleaseDir closes a directory handle.
func (f *FS) ReleaseDir(h vfs.HandleID) {
	f.mu.Lock()
	delete(f.handles, h)
	f.mu.Unlock()
}

func lastName(path string) string {
	_, name := keymap.Split(path)
	return name
}

func (f *FS) addHandle(h any) vfs.HandleID {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextH
	f.nextH++
	f.handles[id] = h
	return id
}

func (f *FS) handle(h vfs.HandleID) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handles[h]
}

func badHandle(op string) error {
	return vfs.NewError(op, "", vfs.CodeBadHandle, "unknown handle")
}
