package streamfs

import (
	"context"
	"os"
	"time"

	"github.com/mount-s3/mount-s3/impl/control"
	"github.com/mount-s3/mount-s3/impl/vfs"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/streamrule"
)

// childPath returns the path of name in directory parent.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) childPath(parent vfs.InodeID, name, op string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := f.inodes.get(parent)
	if dir == nil || dir.kind != keymap.Dir {
		return "", vfs.NewError(op, name, vfs.CodeNotDir, "parent is not a directory")
	}
	return keymap.Join(dir.path, name), nil
}

// Unlink deletes a file's object at once (S6): only with --allow-delete, never while the file
// is being written, never a directory.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Unlink(ctx context.Context, parent vfs.InodeID, name string) error {
	path, err := f.childPath(parent, name, "unlink")
	if err != nil {
		return err
	}
	if err := vfs.CheckName("unlink", path, name, vfs.CodeNotFound); err != nil {
		return err
	}
	t, err := f.targetOf(ctx, path)
	if err != nil {
		return err
	}
	if v := streamrule.Unlink(t, f.rules()); !v.Allowed() {
		return refused("unlink", path, v)
	}
	if err := f.store.Delete(ctx, keymap.FileKey(f.prefix, path)); err != nil {
		return storeError("unlink", path, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.staleLocked(path, keymap.File)
	return nil
}

// staleLocked makes the next lookup or open of path ask the store, whatever the TTL.
// LOCKS_REQUIRED(f.mu)
func (f *FS) staleLocked(path string, kind keymap.Kind) {
	if in := f.inodes.lookup(path, kind); in != nil {
		in.validUntil, in.metaAt = stampOf(f.mounted), stampOf(f.clock.Now())
	}
	f.localChangeLocked(path)
}

// MkDir creates a local directory (S7): it is not written to the bucket, and lasts until the
// mount ends unless a file is committed inside it.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) MkDir(ctx context.Context, parent vfs.InodeID, name string, mode os.FileMode, c vfs.Caller) (vfs.Entry, error) {
	path, err := f.newChildPath(ctx, parent, name, "mkdir")
	if err != nil {
		return vfs.Entry{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if v := streamrule.Create(streamrule.Target{Exists: f.local[path] != nil}); !v.Allowed() {
		return vfs.Entry{}, refused("mkdir", path, v)
	}
	in := f.inodes.getOrCreate(path, keymap.Dir)
	in.local = true
	in.lookups.Add()
	in.validUntil = farFuture
	f.local[path] = in
	delete(f.negative, path)
	f.localChangeLocked(path)
	return f.entryLocked(in), nil
}

// RmDir removes an empty local directory (S7). A directory with entries is ENOTEMPTY; an
// empty directory that exists in the bucket (a marker, or only hidden keys) is EPERM, since
// streaming mode never deletes what it did not create.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) RmDir(ctx context.Context, parent vfs.InodeID, name string) error {
	path, err := f.childPath(parent, name, "rmdir")
	if err != nil {
		return err
	}
	f.mu.Lock()
	in := f.local[path]
	localChildren := false
	for p := range f.local {
		if keymap.Below(p, path) {
			localChildren = true
		}
	}
	f.mu.Unlock()
	// A file being written is not a directory, unless the bucket has a directory of its name,
	// which shadows it (K4).
	writing := in != nil && in.kind != keymap.Dir
	if writing {
		in = nil
	}
	children, inBucket := localChildren, false
	if !children {
		// Hidden keys (K3) can fill whole pages: read on until a visible entry or the end.
		listing, _, inB, err := f.listDir(ctx, "rmdir", path, func(l *keymap.Listing) bool { return len(l.Entries()) > 0 })
		if err != nil {
			return err
		}
		children, inBucket = len(listing.Entries()) > 0, inB
	}
	t := streamrule.Target{Exists: true, Dir: true}
	switch {
	case children || inBucket || in != nil:
	case writing:
		t.Dir = false
	default:
		res, err := f.resolve(ctx, path)
		if err != nil {
			return err
		}
		t = streamrule.Target{Exists: res.found, Dir: res.found && res.kind == keymap.Dir}
		inBucket = t.Dir // made in the bucket since the listing: not ours to delete
	}
	if v := streamrule.Rmdir(t, children, inBucket); !v.Allowed() {
		return refused("rmdir", path, v)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.local, path)
	in.local = false
	in.validUntil, in.metaAt = stampOf(f.mounted), stampOf(f.clock.Now())
	return nil
}

// SetAttr changes attributes. In streaming mode permissions and owners come from the mount
// options (S8), times can be set only on a file being written (where they are replaced by
// the upload's time), and the size only to what a file being written already has.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) SetAttr(ctx context.Context, id vfs.InodeID, req vfs.SetAttrRequest) (vfs.Attr, time.Time, error) {
	f.mu.Lock()
	in := f.inodes.get(id)
	if in == nil {
		f.mu.Unlock()
		return vfs.Attr{}, time.Time{}, vfs.NewError("setattr", "", vfs.CodeBadHandle, "unknown inode")
	}
	path, w, isDir := in.path, in.writer, in.kind == keymap.Dir
	f.mu.Unlock()
	var size *int64
	if req.Size != nil {
		s := int64(*req.Size)
		size = &s
	}
	written := int64(0)
	if w != nil {
		written = w.size()
	}
	t := streamrule.Target{Exists: true, Dir: isDir, BeingWritten: w != nil}
	if v := streamrule.SetAttr(t, req.Mode != nil, req.UID != nil || req.GID != nil, req.Atime != nil || req.Mtime != nil, size, written); !v.Allowed() {
		return vfs.Attr{}, time.Time{}, refused("setattr", path, v)
	}
	return f.GetAttr(ctx, id)
}

// Rename is not supported in streaming mode (S8): S3 has no rename, and a copy of every
// object is not what a program expects of rename(2).
func (f *FS) Rename(ctx context.Context, oldParent vfs.InodeID, oldName string, newParent vfs.InodeID, newName string) error {
	return refused("rename", oldName, streamrule.Unsupported("rename"))
}

// Symlink is not supported in streaming mode (S8): S3 has no links.
func (f *FS) Symlink(ctx context.Context, parent vfs.InodeID, name, target string, c vfs.Caller) (vfs.Entry, error) {
	return vfs.Entry{}, f.Unsupported("symlink")
}

// ReadLink: streaming mode never reports a symlink, so the kernel has no reason to ask.
func (f *FS) ReadLink(ctx context.Context, id vfs.InodeID) (string, error) {
	return "", vfs.NewError("readlink", "", vfs.CodeInvalid, "not a symbolic link")
}

// GetXattr: objects have no extended attributes in streaming mode (S8). The kernel is told so
// once and answers ENOTSUP itself from then on, as for Mountpoint: a write(2) or an `ls -l`
// entry then costs no GETXATTR round trip (ls and cp -a take ENOTSUP as "none").
func (f *FS) GetXattr(ctx context.Context, id vfs.InodeID, name string) ([]byte, error) {
	return nil, vfs.NewError("getxattr", "", vfs.CodeNoXattrs, "streaming mode keeps no extended attributes (S8)")
}

// ListXattr: there are none (S8). The root lists the name that tells `mount-s3 status` where
// the control socket is, since getxattr cannot (control.ListedName).
func (f *FS) ListXattr(ctx context.Context, id vfs.InodeID) ([]string, error) {
	if id == vfs.RootID && f.cfg.ControlSocket != "" {
		return []string{control.ListedName(f.cfg.ControlSocket)}, nil
	}
	return nil, nil
}

// SetXattr: objects have no extended attributes in streaming mode (S8).
func (f *FS) SetXattr(ctx context.Context, id vfs.InodeID, name string, value []byte, flags uint32) error {
	return f.Unsupported("setxattr")
}

// Unsupported is the answer to operations that do not exist in streaming mode (S8): links,
// symbolic links, special files, extended attributes, fallocate.
func (f *FS) Unsupported(op string) error { return refused(op, "", streamrule.Unsupported(op)) }
