package syncfs

import (
	"context"
	"time"

	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Lookup finds name in parent, importing parent's entries on first access (Y1).
func (f *FS) Lookup(ctx context.Context, parent vfs.InodeID, name string) (vfs.Entry, error) {
	path, info, err := f.find(ctx, parent, name)
	if err != nil {
		return vfs.Entry{}, err
	}
	if info.AttrPending && f.cfg.Importer != nil {
		// The kernel keeps the type it is told first: read the metadata before answering.
		if got, err := f.cfg.Importer.ImportAttrs(ctx, path); err != nil {
			f.log.Warn("reading the attributes of an entry failed; answering the defaults", "path", "/"+path, "error", err.Error())
		} else if got.Path == info.Path {
			info = got
		}
	}
	return f.entry(info), nil
}

// LookupListed is Lookup for an entry a ReadDir has just returned (READDIRPLUS): it answers
// from the layer alone, so listing a directory sends no request per entry. An entry whose
// metadata is not read yet is left to a LOOKUP of its own (an error here), and its metadata
// is read ahead of the stat an `ls -l` sends next.
func (f *FS) LookupListed(ctx context.Context, parent vfs.InodeID, name string) (vfs.Entry, error) {
	path, info, err := f.find(ctx, parent, name)
	if err != nil {
		return vfs.Entry{}, err
	}
	if info.AttrPending {
		if f.cfg.Importer != nil {
			f.cfg.Importer.PrefetchAttrs(path)
		}
		return vfs.Entry{}, vfs.NewError("lookup", path, vfs.CodeNotFound, "attributes not read yet")
	}
	return f.entry(info), nil
}

// find resolves name in parent from the layer, importing parent's entries on first access.
func (f *FS) find(ctx context.Context, parent vfs.InodeID, name string) (string, local.Info, error) {
	dir, err := f.pathOf(parent, "lookup")
	if err != nil {
		return "", local.Info{}, err
	}
	path := keymap.Join(dir, name)
	if err := vfs.CheckName("lookup", path, name, vfs.CodeNotFound); err != nil {
		return "", local.Info{}, err
	}
	// The layer says whether dir is imported with the answer; only a directory's first
	// lookups import it (Y1) and ask again.
	info, imported, err := f.layer.LookupIn(dir, name)
	if !imported && f.cfg.Importer != nil {
		if err := f.ensureDir(ctx, "lookup", dir, false); err != nil {
			return "", local.Info{}, err
		}
		info, err = f.layer.Lookup(dir, name)
	}
	if err != nil {
		return "", local.Info{}, localError("lookup", path, err)
	}
	return path, info, nil
}

// GetAttr answers from the local layer; an inode removed while open answers its last
// attributes, as a local file system does for fstat of an unlinked file.
func (f *FS) GetAttr(ctx context.Context, id vfs.InodeID) (vfs.Attr, time.Time, error) {
	f.mu.Lock()
	in := f.byID[id]
	var gone bool
	var last vfs.Attr
	if in != nil {
		gone, last = in.unlinked, in.last
	}
	f.mu.Unlock()
	if in == nil {
		return vfs.Attr{}, time.Time{}, vfs.NewError("getattr", "", vfs.CodeNotFound, "unknown inode")
	}
	if gone {
		return last, f.cfg.Clock.Now(), nil
	}
	// A linked file's name may have left it (a remote change to that name's object): the
	// attributes are those of a name that still names it, never of the file that took the
	// name, or the kernel would size this file by the other one (an O_APPEND then wrote past
	// a gap of zeros).
	path, err := f.pathOf(id, "getattr")
	if err != nil {
		return vfs.Attr{}, time.Time{}, err
	}
	info, err := f.layer.Stat(path)
	if err != nil {
		return vfs.Attr{}, time.Time{}, localError("getattr", path, err)
	}
	a := attrOf(id, info)
	f.mu.Lock()
	in.last = a
	f.mu.Unlock()
	return a, f.cfg.Clock.Now().Add(f.cfg.AttrTTL), nil
}

// Forget drops n kernel references to id.
func (f *FS) Forget(id vfs.InodeID, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.byID[id]
	if in == nil || id == vfs.RootID {
		return
	}
	if in.lookups.Forget(n) {
		delete(f.byID, id)
		for _, p := range append([]string{in.path}, in.links...) {
			if f.byPath[p] == in {
				delete(f.byPath, p)
			}
		}
		if in.dataID != 0 && f.byData[in.dataID] == in {
			delete(f.byData, in.dataID)
		}
	}
}
