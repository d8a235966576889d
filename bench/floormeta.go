package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// The metadata floor: what the sync rows on imported entries (stat, cat of small files, ls -l)
// cost on a FUSE file system that answers every request from memory at once, with sync mode's
// kernel settings (READDIRPLUS, a 1 s attribute timeout, extended attributes kept, so that the
// kernel asks for them). Its gap to a local directory is the kernel's round trip per request,
// which no FUSE mount avoids: a sync row's target "within 2x of a local directory" cannot be
// met where this floor is itself further away.

// floorFS is the floor file system: a core of mount.Mount that answers every request from
// memory. Its root holds floorFile, whose bytes are fill(seed) computed on each read (a
// memory copy, as cheap as the mount serving a part it already holds), floorSmall with the
// sync rows' small files (smallName, smallSeed) and floorMany with the ls -l rows' empty
// entries.
type floorFS struct {
	size        int64
	seed        uint64
	small, many int
	smallSize   int
}

const (
	floorSmall = "small"
	floorMany  = "many"
	// Inode numbers: the two directories, then the files of each.
	floorSmallIno  = floorIno + 1
	floorManyIno   = floorIno + 2
	floorSmallIno0 = 1 << 20
	floorManyIno0  = 1 << 30
)

// floorTTL is sync mode's attribute and entry timeout (syncfs.Config.AttrTTL).
const floorTTL = time.Second

func floorManyName(i int) string { return fmt.Sprintf("f%06d", i) }

func (f *floorFS) attr(id vfs.InodeID) vfs.Attr {
	now := time.Now()
	a := vfs.Attr{Inode: id, Mode: 0o444, Nlink: 1, Atime: now, Mtime: now, Ctime: now}
	switch {
	case id == vfs.RootID || id == floorSmallIno || id == floorManyIno:
		a.Mode, a.Nlink = os.ModeDir|0o555, 2
	case id >= floorManyIno0:
	case id >= floorSmallIno0:
		a.Size = uint64(f.smallSize)
	default:
		a.Size = uint64(f.size)
	}
	return a
}

// child is the inode of name in parent, and whether there is one.
func (f *floorFS) child(parent vfs.InodeID, name string) (vfs.InodeID, bool) {
	var i int
	switch {
	case parent == vfs.RootID && name == floorFile:
		return floorIno, true
	case parent == vfs.RootID && name == floorSmall && f.small > 0:
		return floorSmallIno, true
	case parent == vfs.RootID && name == floorMany && f.many > 0:
		return floorManyIno, true
	case parent == floorSmallIno:
		if _, err := fmt.Sscanf(name, "f%05d", &i); err == nil && i < f.small && name == smallName(i) {
			return floorSmallIno0 + vfs.InodeID(i), true
		}
	case parent == floorManyIno:
		if _, err := fmt.Sscanf(name, "f%06d", &i); err == nil && i < f.many && name == floorManyName(i) {
			return floorManyIno0 + vfs.InodeID(i), true
		}
	}
	return 0, false
}

// entries lists a directory from offset on, at most max entries.
func (f *floorFS) entries(dir vfs.InodeID, offset uint64, max int) []vfs.DirEntry {
	var out []vfs.DirEntry
	add := func(i int, id vfs.InodeID, name string, kind keymap.Kind) {
		if uint64(i) >= offset && len(out) < max {
			out = append(out, vfs.DirEntry{Offset: uint64(i + 1), Inode: id, Name: name, Kind: kind})
		}
	}
	switch dir {
	case vfs.RootID:
		add(0, floorIno, floorFile, keymap.File)
		add(1, floorSmallIno, floorSmall, keymap.Dir)
		add(2, floorManyIno, floorMany, keymap.Dir)
	case floorSmallIno:
		for i := int(offset); i < f.small && len(out) < max; i++ {
			add(i, floorSmallIno0+vfs.InodeID(i), smallName(i), keymap.File)
		}
	case floorManyIno:
		for i := int(offset); i < f.many && len(out) < max; i++ {
			add(i, floorManyIno0+vfs.InodeID(i), floorManyName(i), keymap.File)
		}
	}
	return out
}

func floorErr(op string, code vfs.Code) error {
	return vfs.NewError(op, "", code, "not in the floor file system")
}

func (f *floorFS) StatFS(context.Context) vfs.StatFS {
	return vfs.StatFS{BlockSize: 4096, MaxNameLen: 255, IOBlockSize: 1 << 20}
}

func (f *floorFS) Lookup(_ context.Context, parent vfs.InodeID, name string) (vfs.Entry, error) {
	id, ok := f.child(parent, name)
	if !ok {
		return vfs.Entry{}, floorErr("lookup", vfs.CodeNotFound)
	}
	return vfs.Entry{Attr: f.attr(id), Expires: time.Now().Add(floorTTL)}, nil
}

func (f *floorFS) LookupListed(ctx context.Context, parent vfs.InodeID, name string) (vfs.Entry, error) {
	return f.Lookup(ctx, parent, name)
}

func (f *floorFS) GetAttr(_ context.Context, id vfs.InodeID) (vfs.Attr, time.Time, error) {
	return f.attr(id), time.Now().Add(floorTTL), nil
}

func (f *floorFS) Forget(vfs.InodeID, uint64) {}

// Handles are the inode's own number: nothing is kept per open.
func (f *floorFS) OpenDir(_ context.Context, id vfs.InodeID) (vfs.HandleID, error) {
	return vfs.HandleID(id), nil
}

// ReadDir hands out up to 512 entries a call; the adapter writes what fits the kernel's buffer.
func (f *floorFS) ReadDir(_ context.Context, h vfs.HandleID, offset uint64) ([]vfs.DirEntry, error) {
	return f.entries(vfs.InodeID(h), offset, 512), nil
}

func (f *floorFS) ReleaseDir(vfs.HandleID) {}

func (f *floorFS) Open(_ context.Context, id vfs.InodeID, _ vfs.OpenFlags, _ vfs.Process) (vfs.HandleID, error) {
	return vfs.HandleID(id), nil
}

func (f *floorFS) Read(_ context.Context, h vfs.HandleID, off int64, dst []byte) (int, error) {
	size, seed := f.size, f.seed
	if id := vfs.InodeID(h); id >= floorManyIno0 {
		size = 0
	} else if id >= floorSmallIno0 {
		size, seed = int64(f.smallSize), smallSeed(int(id-floorSmallIno0))
	}
	n := max(0, min(int64(len(dst)), size-off))
	fill(dst[:n], seed, off)
	return int(n), nil
}

func (f *floorFS) Flush(context.Context, vfs.HandleID, vfs.Process) error { return nil }
func (f *floorFS) Fsync(context.Context, vfs.HandleID) error              { return nil }
func (f *floorFS) Release(vfs.HandleID)                                   {}

// GetXattr: a file system that keeps extended attributes, as sync mode does, so the kernel
// keeps asking (CodeNoXattrs, ENOSYS, would stop it).
func (f *floorFS) GetXattr(context.Context, vfs.InodeID, string) ([]byte, error) {
	return nil, floorErr("getxattr", vfs.CodeNoAttr)
}

func (f *floorFS) ListXattr(context.Context, vfs.InodeID) ([]string, error) { return nil, nil }

// The floor is read-only: the rest is refused.
func (f *floorFS) SetAttr(context.Context, vfs.InodeID, vfs.SetAttrRequest) (vfs.Attr, time.Time, error) {
	return vfs.Attr{}, time.Time{}, f.Unsupported("setattr")
}
func (f *floorFS) Create(context.Context, vfs.InodeID, string, os.FileMode, vfs.Caller) (vfs.Entry, vfs.HandleID, error) {
	return vfs.Entry{}, 0, f.Unsupported("create")
}
func (f *floorFS) Write(context.Context, vfs.HandleID, int64, []byte) error {
	return f.Unsupported("write")
}
func (f *floorFS) MkDir(context.Context, vfs.InodeID, string, os.FileMode, vfs.Caller) (vfs.Entry, error) {
	return vfs.Entry{}, f.Unsupported("mkdir")
}
func (f *floorFS) RmDir(context.Context, vfs.InodeID, string) error  { return f.Unsupported("rmdir") }
func (f *floorFS) Unlink(context.Context, vfs.InodeID, string) error { return f.Unsupported("unlink") }
func (f *floorFS) Rename(context.Context, vfs.InodeID, string, vfs.InodeID, string) error {
	return f.Unsupported("rename")
}
func (f *floorFS) Symlink(context.Context, vfs.InodeID, string, string, vfs.Caller) (vfs.Entry, error) {
	return vfs.Entry{}, f.Unsupported("symlink")
}
func (f *floorFS) ReadLink(context.Context, vfs.InodeID) (string, error) {
	return "", f.Unsupported("readlink")
}
func (f *floorFS) SetXattr(context.Context, vfs.InodeID, string, []byte, uint32) error {
	return f.Unsupported("setxattr")
}
func (f *floorFS) Unsupported(op string) error { return floorErr(op, vfs.CodeReadOnly) }

// fuseFloorMeta times the sync rows on imported entries (syncImported's stat and cat, and
// syncList's ls -l) on the floor file system, each beside a local directory of the same files.
func (e *env) fuseFloorMeta() []row {
	c := e.cfg
	rows := []row{
		{name: fmt.Sprintf("FUSE floor: stat %d files (vs local dir)", c.smallFiles), unit: "s"},
		{name: fmt.Sprintf("FUSE floor: cat %d x %s, one after another (vs local dir)", c.smallFiles, size(int64(c.smallSize))), unit: "s"},
		{name: fmt.Sprintf("FUSE floor: ls -l %d entries (vs local dir)", c.dirEntries), unit: "s"},
	}
	fail := func(err error) []row {
		rows[0].err = err
		return rows
	}
	self, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	dir, err := os.MkdirTemp("", "mount-s3-bench-floor-")
	if err != nil {
		return fail(err)
	}
	big := e.big()
	spec := fmt.Sprintf("%s=%d:%d:%d:%d:%d", floorEnv, big.size, big.seed, c.smallFiles, c.smallSize, c.dirEntries)
	m, err := e.spawn(dir, self, []string{dir}, []string{spec})
	if err != nil {
		return fail(err)
	}
	e.dropCaches()
	secs, err := e.statCat(filepath.Join(dir, floorSmall)+"/", c.smallFiles)
	rows[0].ours, rows[1].ours = secs[0], secs[1]
	if err == nil {
		e.dropCaches()
		rows[2].ours, err = e.lsl(filepath.Join(dir, floorMany))
	}
	for i := range rows {
		rows[i].rssKiB, rows[i].cpuSecs, rows[i].err = m.peakRSS(), m.cpu(), err
	}
	if cerr := m.close(); err == nil && cerr != nil {
		rows[0].err = cerr
	}

	local, err := os.MkdirTemp("", "mount-s3-bench-floor-local-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(local)
	buf := make([]byte, c.smallSize)
	for i := 0; i < c.smallFiles && err == nil; i++ {
		fill(buf, smallSeed(i), 0)
		err = os.WriteFile(filepath.Join(local, smallName(i)), buf, 0o644)
	}
	many := filepath.Join(local, floorMany)
	if err == nil {
		err = os.Mkdir(many, 0o755)
	}
	for i := 0; i < c.dirEntries && err == nil; i++ {
		err = os.WriteFile(filepath.Join(many, floorManyName(i)), nil, 0o644)
	}
	if err != nil {
		return fail(err)
	}
	e.dropCaches()
	secs, err = e.statCat(local+"/", c.smallFiles)
	baseline(&rows[0], secs[0], err)
	baseline(&rows[1], secs[1], err)
	e.dropCaches()
	v, err := e.lsl(many)
	baseline(&rows[2], v, err)
	return rows
}
