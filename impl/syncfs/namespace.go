package syncfs

import (
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mount-s3/mount-s3/impl/control"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/posixmeta"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// MkDir makes a directory; its marker object "dir/" is owed to the bucket (Y8).
func (f *FS) MkDir(ctx context.Context, parent vfs.InodeID, name string, mode os.FileMode, c vfs.Caller) (vfs.Entry, error) {
	dir, path, err := f.childPath(parent, name, "mkdir")
	if err != nil {
		return vfs.Entry{}, err
	}
	if err := f.ensureDir(ctx, "mkdir", dir, false); err != nil {
		return vfs.Entry{}, err
	}
	info, err := f.layer.Mkdir(path, uint32(mode.Perm())|specialBits(mode), c.UID, c.GID)
	if err != nil {
		return vfs.Entry{}, localError("mkdir", path, err)
	}
	f.notify()
	return f.entry(info), nil
}

// Symlink makes a symbolic link, stored as s3fs-fuse stores one (Y3).
func (f *FS) Symlink(ctx context.Context, parent vfs.InodeID, name, target string, c vfs.Caller) (vfs.Entry, error) {
	dir, path, err := f.childPath(parent, name, "symlink")
	if err != nil {
		return vfs.Entry{}, err
	}
	if err := f.ensureDir(ctx, "symlink", dir, false); err != nil {
		return vfs.Entry{}, err
	}
	info, err := f.layer.Symlink(target, path, c.UID, c.GID)
	if err != nil {
		return vfs.Entry{}, localError("symlink", path, err)
	}
	f.notify()
	return f.entry(info), nil
}

// ReadLink returns a symlink's target.
func (f *FS) ReadLink(ctx context.Context, id vfs.InodeID) (string, error) {
	path, err := f.pathOf(id, "readlink")
	if err != nil {
		return "", err
	}
	t, err := f.layer.Readlink(path)
	return t, localError("readlink", path, err)
}

// Unlink removes a file or symlink; the DeleteObject is owed (Y7).
func (f *FS) Unlink(ctx context.Context, parent vfs.InodeID, name string) error {
	dir, path, err := f.childPath(parent, name, "unlink")
	if err != nil {
		return err
	}
	if err := f.ensureDir(ctx, "unlink", dir, false); err != nil {
		return err
	}
	if err := f.layer.Remove(path); err != nil {
		return localError("unlink", path, err)
	}
	f.mu.Lock()
	f.dropPathLocked(path)
	f.mu.Unlock()
	f.notify()
	return nil
}

// RmDir removes an empty directory. Its entries are imported first: a directory that looks
// empty only because its objects were never listed is not empty (Y8).
func (f *FS) RmDir(ctx context.Context, parent vfs.InodeID, name string) error {
	dir, path, err := f.childPath(parent, name, "rmdir")
	if err != nil {
		return err
	}
	if err := f.ensureDir(ctx, "rmdir", dir, false); err != nil {
		return err
	}
	if info, err := f.layer.Stat(path); err == nil && info.Kind == local.KindDir {
		if err := f.ensureDir(ctx, "rmdir", path, true); err != nil {
			return err
		}
	}
	if err := f.layer.Rmdir(path); err != nil {
		return localError("rmdir", path, err)
	}
	f.mu.Lock()
	f.dropPathLocked(path)
	f.mu.Unlock()
	f.notify()
	return nil
}

// Rename is instant locally; the bucket's copy and delete of every object are queued in the
// same transaction and run in the background (Y9). A directory's whole tree is imported first
// so that objects not yet seen move too.
func (f *FS) Rename(ctx context.Context, oldParent vfs.InodeID, oldName string, newParent vfs.InodeID, newName string) error {
	srcDir, src, err := f.childPath(oldParent, oldName, "rename")
	if err != nil {
		return err
	}
	dstDir, dst, err := f.childPath(newParent, newName, "rename")
	if err != nil {
		return err
	}
	for _, d := range []string{srcDir, dstDir} {
		if err := f.ensureDir(ctx, "rename", d, true); err != nil {
			return err
		}
	}
	for _, p := range []string{src, dst} {
		if info, err := f.layer.Stat(p); err == nil && info.Kind == local.KindDir {
			if err := f.ensureTree(ctx, "rename", p); err != nil {
				return err
			}
		}
	}
	a, aerr := f.layer.Stat(src)
	b, berr := f.layer.Stat(dst)
	sameFile := aerr == nil && berr == nil && fileID(a) != 0 && fileID(a) == fileID(b)
	if err := f.layer.Rename(src, dst); err != nil {
		return localError("rename", src, err)
	}
	if sameFile {
		return nil // two names of one file: rename(2) did nothing
	}
	f.mu.Lock()
	f.movePathsLocked(src, dst)
	f.mu.Unlock()
	f.notify()
	return nil
}

// SetAttr changes size, mode, owner or times; each is exported with the next upload (Y7).
func (f *FS) SetAttr(ctx context.Context, id vfs.InodeID, req vfs.SetAttrRequest) (vfs.Attr, time.Time, error) {
	path, err := f.pathOf(id, "setattr")
	if err != nil {
		// ftruncate or fchmod of an unlinked file: nothing is kept, the call succeeds.
		if a, exp, gerr := f.GetAttr(ctx, id); gerr == nil {
			return a, exp, nil
		}
		return vfs.Attr{}, time.Time{}, err
	}
	if err := f.settle(ctx, "setattr", path); err != nil {
		return vfs.Attr{}, time.Time{}, err
	}
	info, err := f.layer.Stat(path)
	if err != nil {
		return vfs.Attr{}, time.Time{}, localError("setattr", path, err)
	}
	if req.Size != nil {
		if info.Kind != local.KindFile {
			return vfs.Attr{}, time.Time{}, vfs.NewError("truncate", path, vfs.CodeIsDir, "not a regular file")
		}
		h, err := f.beginWrite(ctx, "truncate", path, info)
		if err != nil {
			return vfs.Attr{}, time.Time{}, err
		}
		err = errors.Join(h.Truncate(int64(*req.Size)), h.Close())
		if err != nil {
			return vfs.Attr{}, time.Time{}, localError("truncate", path, err)
		}
	}
	if req.Mode != nil {
		if err := f.layer.Chmod(path, uint32(req.Mode.Perm())|specialBits(*req.Mode)); err != nil {
			return vfs.Attr{}, time.Time{}, localError("chmod", path, err)
		}
	}
	if req.UID != nil || req.GID != nil {
		uid, gid := info.Attr.UID, info.Attr.GID
		if req.UID != nil {
			uid = *req.UID
		}
		if req.GID != nil {
			gid = *req.GID
		}
		if err := f.layer.Chown(path, uid, gid); err != nil {
			return vfs.Attr{}, time.Time{}, localError("chown", path, err)
		}
	}
	switch {
	case req.Mtime != nil:
		if err := f.layer.Utimens(path, *req.Mtime, req.Atime); err != nil {
			return vfs.Attr{}, time.Time{}, localError("utimens", path, err)
		}
	case req.Atime != nil:
		if err := f.layer.SetAtime(path, *req.Atime); err != nil {
			return vfs.Attr{}, time.Time{}, localError("utimens", path, err)
		}
	}
	f.notify()
	return f.GetAttr(ctx, id)
}

// GetXattr answers an extended attribute: one set on the file (kept with its object's
// metadata, Y3), the original path of a file in lost+found (C4), or the control socket's path
// on the root.
func (f *FS) GetXattr(ctx context.Context, id vfs.InodeID, name string) ([]byte, error) {
	if id == vfs.RootID && name == control.SocketXattr && f.cfg.ControlSocket != "" {
		return []byte(f.cfg.ControlSocket), nil
	}
	if !posixmeta.KeptXattr(name) {
		// Asked of every entry by `ls -l` (system.posix_acl_access): answered without
		// reading the record, since such a name is never served.
		return nil, vfs.NewError("getxattr", "", vfs.CodeNoAttr, "no such attribute")
	}
	info, err := f.stat(ctx, id, "getxattr")
	if err != nil {
		return nil, err
	}
	if name == syncrule.OriginalPathXattr && info.OriginalPath != "" {
		return []byte(info.OriginalPath), nil
	}
	if v, ok := info.Attr.Xattrs[name]; ok {
		return v, nil
	}
	return nil, vfs.NewError("getxattr", info.Path, vfs.CodeNoAttr, "no such attribute")
}

// ListXattr lists the extended attributes of a file.
func (f *FS) ListXattr(ctx context.Context, id vfs.InodeID) ([]string, error) {
	info, err := f.stat(ctx, id, "listxattr")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(info.Attr.Xattrs)+1)
	for k := range info.Attr.Xattrs {
		if posixmeta.KeptXattr(k) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	if info.OriginalPath != "" {
		names = append(names, syncrule.OriginalPathXattr)
	}
	return names, nil
}

// stat is the entry of inode id with its object's attributes, read now if its import has not
// yet (extended attributes travel with them).
func (f *FS) stat(ctx context.Context, id vfs.InodeID, op string) (local.Info, error) {
	path, err := f.pathOf(id, op)
	if err != nil {
		return local.Info{}, err
	}
	info, err := f.layer.Stat(path)
	if err == nil && info.AttrPending && f.cfg.Importer != nil {
		info, err = f.cfg.Importer.ImportAttrs(ctx, path)
	}
	return info, localError(op, path, err)
}

// SetXattr sets an extended attribute of the namespaces sync mode keeps (user., trusted., security.: plain names and bytes, which
// the kernel checks the caller's right to before asking). It is exported with the file's
// next upload; flags are setxattr(2)'s XATTR_CREATE (1) and XATTR_REPLACE (2).
func (f *FS) SetXattr(ctx context.Context, id vfs.InodeID, name string, value []byte, flags uint32) error {
	path, err := f.xattrTarget(ctx, id, "setxattr", name)
	if err != nil {
		return err
	}
	if err := f.layer.SetXattr(path, name, value, local.XattrMode(flags&3)); err != nil {
		return localError("setxattr", path, err)
	}
	f.notify()
	return nil
}

// RemoveXattr removes an extended attribute set with SetXattr.
func (f *FS) RemoveXattr(ctx context.Context, id vfs.InodeID, name string) error {
	path, err := f.xattrTarget(ctx, id, "removexattr", name)
	if err != nil {
		return err
	}
	if err := f.layer.RemoveXattr(path, name); err != nil {
		return localError("removexattr", path, err)
	}
	f.notify()
	return nil
}

// reservedXattrs is the prefix of the mount's own attributes (the control socket, a lost
// file's original path): they are answered, never stored.
const reservedXattrs = "user.mount-s3."

// xattrTarget is the path whose attribute name may be changed, with its object's attributes
// recorded (settle).
func (f *FS) xattrTarget(ctx context.Context, id vfs.InodeID, op, name string) (string, error) {
	path, err := f.pathOf(id, op)
	if err != nil {
		return "", err
	}
	if err := f.settle(ctx, op, path); err != nil {
		return "", err
	}
	switch {
	case strings.HasPrefix(name, reservedXattrs):
		return "", vfs.NewError(op, path, vfs.CodePerm, name+" is reserved for the mount's own use")
	case !posixmeta.KeptXattr(name):
		return "", vfs.NewError(op, path, vfs.CodeNotSupported, name+": only user., trusted. and security. attributes are kept")
	}
	return path, nil
}

// settle records the object's attributes of an imported entry whose attributes a lookup read
// but the importer has not recorded yet, before a local change to them: the change starts
// from the bucket's attributes (the other extended attributes, the mode), not the defaults.
func (f *FS) settle(ctx context.Context, op, path string) error {
	info, err := f.layer.Stat(path)
	if err != nil || !info.AttrPending || f.cfg.Importer == nil {
		return localError(op, path, err)
	}
	got, err := f.cfg.Importer.ImportAttrs(ctx, path)
	if err != nil {
		return localError(op, path, err)
	}
	if got.AttrPending || got.Kind == local.KindSymlink {
		return nil // not read (the object changed), or a symlink, recorded with its target
	}
	return localError(op, path, f.layer.SetRemoteAttr(path, got.State.Base, got.Attr, got.Kind, ""))
}

// MkNode makes a FIFO, a character or block device, or a socket (bind(2) of a UNIX socket
// makes one), or, for a regular file's mode, an empty file. The object is empty with the
// type in its metadata, as s3fs-fuse stores them (Y3); the kernel keeps their I/O local.
func (f *FS) MkNode(ctx context.Context, parent vfs.InodeID, name string, mode os.FileMode, rdev uint32, c vfs.Caller) (vfs.Entry, error) {
	dir, path, err := f.childPath(parent, name, "mknod")
	if err != nil {
		return vfs.Entry{}, err
	}
	kind, ok := kindOfMode(mode)
	if !ok {
		return vfs.Entry{}, vfs.NewError("mknod", path, vfs.CodeInvalid, "mknod of a directory or symlink")
	}
	if err := f.ensureDir(ctx, "mknod", dir, false); err != nil {
		return vfs.Entry{}, err
	}
	perm := uint32(mode.Perm()) | specialBits(mode)
	var info local.Info
	if kind == local.KindFile {
		info, err = f.layer.Create(path, perm, c.UID, c.GID)
	} else {
		info, err = f.layer.Mknod(path, kind, perm, rdev, c.UID, c.GID)
	}
	if err != nil {
		return vfs.Entry{}, localError("mknod", path, err)
	}
	f.notify()
	return f.entry(info), nil
}
