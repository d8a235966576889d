package fs

import (
	"context"
	"github.com/mount-s3/mount-s3/impl/control"
	"os"
	"time"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// childPath returns the path of name in directory parent.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) childPath(parent InodeID, name, op string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := f.inodes.get(parent)
	if dir == nil || dir.kind != keymap.Dir {
		return "", NewError(op, name, CodeNotDir, "parent is not a directory")
	}
	return keymap.Join(dir.path, name), nil
}

// Unlink deletes a file's object at once (S6): only with --allow-delete, never while the file
// is being written, never a directory.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) Unlink(ctx context.Context, parent InodeID, name string) error {
	path, err := f.childPath(parent, name, "unlink")
	if err != nil {
		return err
	}
	f.mu.Lock()
	if in := f.local[path]; in != nil {
		f.mu.Unlock()
		if in.kind == keymap.Dir {
			return NewError("unlink", path, CodeIsDir, "is a directory")
		}
		return NewError("unlink", path, CodePerm, "the file is being written; close it first")
	}
	f.mu.Unlock()
	if err := CheckName("unlink", path, name, CodeNotFound); err != nil {
		return err
	}
	res, err := f.resolve(ctx, path)
	if err != nil {
		return err
	}
	switch {
	case !res.found:
		return NewError("unlink", path, CodeNotFound, "no such file")
	case res.kind == keymap.Dir:
		return NewError("unlink", path, CodeIsDir, "is a directory")
	case !f.cfg.AllowDelete:
		return NewError("unlink", path, CodePerm, "deleting objects needs --allow-delete")
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
		in.validUntil, in.metaAt = f.mounted, f.clock.Now()
	}
	f.localChangeLocked(path)
}

// MkDir creates a local directory (S7): it is not written to the bucket, and lasts until the
// mount ends unless a file is committed inside it.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) MkDir(ctx context.Context, parent InodeID, name string, mode os.FileMode, c Caller) (Entry, error) {
	path, err := f.newChildPath(ctx, parent, name, "mkdir")
	if err != nil {
		return Entry{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.local[path] != nil {
		return Entry{}, NewError("mkdir", path, CodeExists, "exists")
	}
	in := f.inodes.getOrCreate(path, keymap.Dir)
	in.local = true
	in.lookups++
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
func (f *FS) RmDir(ctx context.Context, parent InodeID, name string) error {
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
	if localChildren {
		return NewError("rmdir", path, CodeNotEmpty, "directory not empty")
	}
	// Hidden keys (K3) can fill whole pages: read on until a visible entry or the end.
	listing, _, inBucket, err := f.listDir(ctx, "rmdir", path, func(l *keymap.Listing) bool { return len(l.Entries()) > 0 })
	if err != nil {
		return err
	}
	switch {
	case len(listing.Entries()) > 0:
		return NewError("rmdir", path, CodeNotEmpty, "directory not empty")
	case inBucket:
		return NewError("rmdir", path, CodePerm, "the directory exists in the bucket; streaming mode does not delete directory markers")
	case writing:
		return NewError("rmdir", path, CodeNotDir, "not a directory")
	case in == nil:
		res, err := f.resolve(ctx, path)
		if err != nil {
			return err
		}
		if res.found && res.kind == keymap.File {
			return NewError("rmdir", path, CodeNotDir, "not a directory")
		}
		return NewError("rmdir", path, CodeNotFound, "no such directory")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.local, path)
	in.local = false
	in.validUntil, in.metaAt = f.mounted, f.clock.Now()
	return nil
}

// SetAttrRequest is a setattr(2) family call; nil fields are not changed.
type SetAttrRequest struct {
	Size  *uint64
	Mode  *os.FileMode
	UID   *uint32
	GID   *uint32
	Atime *time.Time
	Mtime *time.Time
}

// SetAttr changes attributes. In streaming mode permissions and owners come from the mount
// options (S8), times can be set only on a file being written (where they are replaced by
// the upload's time), and the size only to what a file being written already has.
// LOCKS_EXCLUDED(f.mu)
func (f *FS) SetAttr(ctx context.Context, id InodeID, req SetAttrRequest) (Attr, time.Time, error) {
	f.mu.Lock()
	in := f.inodes.get(id)
	if in == nil {
		f.mu.Unlock()
		return Attr{}, time.Time{}, NewError("setattr", "", CodeBadHandle, "unknown inode")
	}
	path, w, isDir := in.path, in.writer, in.kind == keymap.Dir
	f.mu.Unlock()
	switch {
	case req.Mode != nil || req.UID != nil || req.GID != nil:
		return Attr{}, time.Time{}, NewError("setattr", path, CodePerm, "chmod and chown are not supported in streaming mode; permissions come from --uid, --gid, --file-mode and --dir-mode")
	case req.Size != nil && (w == nil || int64(*req.Size) != w.size()):
		return Attr{}, time.Time{}, NewError("setattr", path, CodeNotSupported, "truncate is not supported in streaming mode; open with O_TRUNC to replace a file, or use --sync-dir")
	case (req.Atime != nil || req.Mtime != nil) && w == nil && !isDir:
		return Attr{}, time.Time{}, NewError("setattr", path, CodePerm, "times can only be set on a file being written in streaming mode")
	}
	return f.GetAttr(ctx, id)
}

// Rename is not supported in streaming mode (S8): S3 has no rename, and a copy of every
// object is not what a program expects of rename(2).
func (f *FS) Rename(ctx context.Context, oldParent InodeID, oldName string, newParent InodeID, newName string) error {
	return NewError("rename", oldName, CodeNotSupported, "rename is not supported in streaming mode; use --sync-dir for full file semantics")
}

// Symlink is not supported in streaming mode (S8): S3 has no links.
func (f *FS) Symlink(ctx context.Context, parent InodeID, name, target string, c Caller) (Entry, error) {
	return Entry{}, f.Unsupported("symlink")
}

// ReadLink: streaming mode never reports a symlink, so the kernel has no reason to ask.
func (f *FS) ReadLink(ctx context.Context, id InodeID) (string, error) {
	return "", NewError("readlink", "", CodeInvalid, "not a symbolic link")
}

// GetXattr: objects have no extended attributes in streaming mode. ENODATA rather than ENOTSUP
// so that `ls -l` and `cp -a` do not complain (S8).
func (f *FS) GetXattr(ctx context.Context, id InodeID, name string) ([]byte, error) {
	if id == RootID && name == control.SocketXattr && f.cfg.ControlSocket != "" {
		return []byte(f.cfg.ControlSocket), nil
	}
	return nil, NewError("getxattr", "", CodeNoAttr, "no such attribute")
}

// ListXattr: there are none (S8).
func (f *FS) ListXattr(ctx context.Context, id InodeID) ([]string, error) { return nil, nil }

// SetXattr: objects have no extended attributes in streaming mode (S8).
func (f *FS) SetXattr(ctx context.Context, id InodeID, name string, value []byte, flags uint32) error {
	return f.Unsupported("setxattr")
}

// Unsupported is the answer to operations that do not exist in streaming mode (S8): links,
// symbolic links, special files, extended attributes, fallocate.
func (f *FS) Unsupported(op string) error {
	return NewError(op, "", CodeNotSupported, op+" is not supported in streaming mode; use --sync-dir for full file semantics")
}
