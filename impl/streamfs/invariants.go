package streamfs

import (
	"fmt"

	"github.com/mount-s3/mount-s3/impl/vfs"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// CheckInvariants checks the inode and handle tables: the tests call it after their
// operations, and MOUNT_S3_CHECK_INVARIANTS=1 makes the mount call it after every one (cmd).
// LOCKS_EXCLUDED(f.mu)
func (f *FS) CheckInvariants() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.inodes.check(); err != nil {
		return err
	}
	for path, in := range f.local {
		if in.path != path || !in.local || f.inodes.lookup(path, in.kind) != in {
			return fmt.Errorf("local inode %q (%d) is not the live inode of its path", path, in.id)
		}
	}
	var err error
	f.handles.Each(func(hid vfs.HandleID, v any) bool {
		switch h := v.(type) {
		case *writeHandle:
			if in := h.inode; in.writer == h && f.inodes.get(in.id) != in {
				err = fmt.Errorf("write handle of %q: its inode %d is not live", h.path, in.id)
			}
		case *vfs.DirHandle:
			if f.inodes.get(h.Inode) == nil {
				err = fmt.Errorf("directory handle of %q: inode %d is not live", h.Path, h.Inode)
			}
		case *readHandle:
		default:
			err = fmt.Errorf("handle %d is a %T", hid, v)
		}
		return err == nil
	})
	return err
}

// check: live and byKey hold the same inodes, each under its own number and key; a number
// is its key's hash unless moved says otherwise (S9); the root is there; only files are
// being written.
func (t *inodeTable) check() error {
	root := t.live[vfs.RootID]
	if root == nil || root.path != "" || root.kind != keymap.Dir || t.byKey[nodeKey{"", keymap.Dir}] != root {
		return fmt.Errorf("the root inode is missing or wrong")
	}
	if len(t.live) != len(t.byKey) {
		return fmt.Errorf("%d live inodes, %d keys", len(t.live), len(t.byKey))
	}
	for id, in := range t.live {
		k := nodeKey{in.path, in.kind}
		switch {
		case in.id != id:
			return fmt.Errorf("inode %d is filed under %d", in.id, id)
		case t.byKey[k] != in:
			return fmt.Errorf("inode %d (%q) is not its key's", id, in.path)
		case in.writer != nil && in.kind != keymap.File:
			return fmt.Errorf("inode %d (%q) is written but not a file", id, in.path)
		}
		if id == vfs.RootID {
			continue
		}
		want, ok := t.moved[k]
		if !ok {
			want = hashNumber(k)
		}
		if id != want {
			return fmt.Errorf("inode %q has number %d, not its key's %d", in.path, id, want)
		}
	}
	return nil
}
