package syncfs

import (
	"fmt"
	"slices"

	"github.com/mount-s3/mount-s3/impl/vfs"
)

// CheckInvariants checks the inode and handle tables: the tests call it after their
// operations, and MOUNT_S3_CHECK_INVARIANTS=1 makes the mount call it after every one (cmd).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) CheckInvariants() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if root := f.byID[vfs.RootID]; root == nil || root.path != "" || f.byPath[""] != root {
		return fmt.Errorf("the root inode is missing or wrong")
	}
	for id, in := range f.byID {
		switch {
		case in.id != id:
			return fmt.Errorf("inode %d is filed under %d", in.id, id)
		case id >= f.nextID:
			return fmt.Errorf("inode %d is not below the next number %d", id, f.nextID)
		case in.unlinked:
			continue
		case f.byPath[in.path] != in:
			return fmt.Errorf("inode %d: its path %q names another inode", id, in.path)
		}
		for _, l := range in.links {
			if f.byPath[l] != in {
				return fmt.Errorf("inode %d: its link %q names another inode", id, l)
			}
		}
	}
	for p, in := range f.byPath {
		switch {
		case f.byID[in.id] != in:
			return fmt.Errorf("path %q names inode %d, which is not live", p, in.id)
		case in.unlinked:
			return fmt.Errorf("path %q names inode %d, which is unlinked", p, in.id)
		case in.path != p && !slices.Contains(in.links, p):
			return fmt.Errorf("path %q names inode %d, which does not have that name", p, in.id)
		}
	}
	for d, in := range f.byData {
		if in.dataID != d || f.byID[in.id] != in {
			return fmt.Errorf("data id %d names inode %d, which is not live or not that file's", d, in.id)
		}
	}
	var err error
	f.handles.Each(func(hid vfs.HandleID, v any) bool {
		switch h := v.(type) {
		case *fileHandle:
			if f.byID[h.ino] == nil {
				err = fmt.Errorf("file handle of %q: inode %d is not live", h.path, h.ino)
			}
		case *vfs.DirHandle:
		default:
			err = fmt.Errorf("handle %d is a %T", hid, v)
		}
		return err == nil
	})
	return err
}
