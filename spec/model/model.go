// Package model is the reference file system of streaming mode (rules K1-K8 and S1-S10 of
// docs/SEMANTICS.md): what a mount must answer to each operation, built only from
// spec/keymap and the streaming rules (spec/streamrule, which the streaming core asks too). It is a plain value: no goroutines, no I/O, no clock.
// The conformance suite runs random operation sequences on a Model and on a real mount and
// compares every result, errno and the whole visible tree.
//
// The Model holds what decides the answers: the bucket (every key and its content, including
// keys outside the mount prefix and hidden keys), the mount prefix, the flags that allow
// overwrites and deletes (S6), the local directories made by mkdir (S7) and the open write
// handles (S2, S4).
//
// Paths are given as a program gives them to the kernel, relative to the mount root: names
// joined by '/', where "." and ".." may appear and are resolved as the kernel resolves them
// (".." of the root stays at the root; the suite never climbs out of the mount). Some errnos
// are the kernel's, decided before the mount sees the call (EEXIST for mkdir of "a/.", EISDIR
// for unlink of a directory, ...); the Model gives those too, since a program sees them.
package model

import (
	"maps"
	"slices"
	"strings"
	"syscall"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/streamrule"
)

// Options configure a Model like the mount's command line.
type Options struct {
	Prefix         string // the mount prefix (K8): empty or ending in '/'
	AllowOverwrite bool   // --allow-overwrite (S6)
	AllowDelete    bool   // --allow-delete (S6)
}

// Handle is an open write handle returned by Create and OpenTrunc.
type Handle int

// Node is what stat shows for a visible path.
type Node struct {
	Kind keymap.Kind
	Size int64 // files only
}

// Model is the reference state of one streaming mount and its bucket.
type Model struct {
	opts Options
	// keys is the bucket: every object, by full key, with its content.
	keys map[string]string
	// localDirs are the directories made by mkdir that no committed file has made real (S7).
	localDirs map[string]bool
	// handles are the open write handles.
	handles map[Handle]*handle
	next    Handle
}

// handle is an open write handle (S4, S6).
type handle struct {
	path string // canonical path of the file
	data []byte // bytes accepted so far
	// up is the upload's progress: failed (a write out of sequence: close commits nothing),
	// or complete (fsync committed it: the file is no longer being written).
	up streamrule.Upload
}

// New returns a Model with an empty bucket.
func New(opts Options) *Model {
	return &Model{opts: opts, keys: map[string]string{}, localDirs: map[string]bool{}, handles: map[Handle]*handle{}}
}

// Prefix returns the mount prefix.
func (m *Model) Prefix() string { return m.opts.Prefix }

// Keys returns a copy of the bucket: full key -> content.
func (m *Model) Keys() map[string]string { return maps.Clone(m.keys) }

// Handles returns the open write handles in the order they were opened.
func (m *Model) Handles() []Handle {
	hs := slices.Collect(maps.Keys(m.handles))
	slices.Sort(hs)
	return hs
}

// HandlePath returns the canonical path a handle writes, and the number of bytes it has
// accepted (where a sequential write continues).
func (m *Model) HandlePath(h Handle) (path string, size int64) {
	if hd := m.handles[h]; hd != nil {
		return hd.path, int64(len(hd.data))
	}
	return "", 0
}

// writer returns the handle that is writing path, or nil. A handle is writing its file from
// open until close, even after a failed write, unless fsync completed the upload (S2, S4).
func (m *Model) writer(path string) *handle {
	for _, h := range m.handles {
		if h.path == path && !h.up.Complete {
			return h
		}
	}
	return nil
}

// Tree returns every visible path (the root is "") with its kind and, for files, its size.
//
// It is keymap.Tree of the bucket (K1-K4, K8), plus the local directories (S7) and the files
// being written (S4), each of which also keeps its ancestors as directories. A directory
// shadows a file of the same name (K4), whether the directory is in the bucket or local; a
// file being written shows the bytes written so far as its size (S2) and hides the object it
// replaces.
func (m *Model) Tree() map[string]Node {
	t := map[string]Node{}
	for p, k := range keymap.Tree(m.opts.Prefix, slices.Collect(maps.Keys(m.keys))) {
		n := Node{Kind: k}
		if k == keymap.File {
			n.Size = int64(len(m.keys[keymap.FileKey(m.opts.Prefix, p)]))
		}
		t[p] = n
	}
	dirs := func(p string) {
		for ; p != ""; p, _ = keymap.Split(p) {
			t[p] = Node{Kind: keymap.Dir}
		}
	}
	for d := range m.localDirs {
		dirs(d)
	}
	for _, h := range m.handles {
		if h.up.Complete {
			continue
		}
		parent, _ := keymap.Split(h.path)
		dirs(parent)
		if t[h.path].Kind != keymap.Dir {
			t[h.path] = Node{Kind: keymap.File, Size: int64(len(h.data))}
		}
	}
	return t
}

// children returns the entries of directory dir of tree t, in listing order (K6).
func children(t map[string]Node, dir string) []keymap.Entry {
	var out []keymap.Entry
	for p, n := range t {
		if p == "" {
			continue
		}
		if d, name := keymap.Split(p); d == dir {
			out = append(out, keymap.Entry{Name: name, Kind: n.Kind})
		}
	}
	keymap.SortEntries(out)
	return out
}

// walk resolves the components of a path that must all be directories (the parent part of a
// path, or all of it), the way the kernel walks a path: a missing component is ENOENT, a file
// where a directory is needed is ENOTDIR, a name longer than NAME_MAX is ENAMETOOLONG.
func walk(t map[string]Node, comps []string) (string, syscall.Errno) {
	cur := ""
	for _, c := range comps {
		switch c {
		case ".", "":
		case "..":
			cur, _ = keymap.Split(cur)
		default:
			if len(c) > keymap.MaxNameLen {
				return "", syscall.ENAMETOOLONG
			}
			n, ok := t[keymap.Join(cur, c)]
			if !ok {
				return "", syscall.ENOENT
			}
			if n.Kind != keymap.Dir {
				return "", syscall.ENOTDIR
			}
			cur = keymap.Join(cur, c)
		}
	}
	return cur, 0
}

// resolve resolves a whole path to the canonical path of what it names and its node.
func resolve(t map[string]Node, path string) (string, Node, syscall.Errno) {
	dir, last, errno := parent(t, path)
	if errno != 0 {
		return "", Node{}, errno
	}
	switch last {
	case "", ".":
		return dir, t[dir], 0
	case "..":
		d, _ := keymap.Split(dir)
		return d, t[d], 0
	}
	if len(last) > keymap.MaxNameLen {
		return "", Node{}, syscall.ENAMETOOLONG
	}
	p := keymap.Join(dir, last)
	n, ok := t[p]
	if !ok {
		return "", Node{}, syscall.ENOENT
	}
	return p, n, 0
}

// parent resolves all but the last component of path, which it returns as is. The last
// component of the root is "".
func parent(t map[string]Node, path string) (dir, last string, errno syscall.Errno) {
	comps := strings.Split(path, keymap.Delimiter)
	last = comps[len(comps)-1]
	dir, errno = walk(t, comps[:len(comps)-1])
	return dir, last, errno
}

// named resolves the parent of path and checks its last name as the kernel and the mount do
// before creating or removing it: a parent's errno, dot for "" or ".", dotdot for "..", and
// ENAMETOOLONG; else the entry's canonical path.
func named(t map[string]Node, path string, dot, dotdot syscall.Errno) (string, syscall.Errno) {
	dir, last, errno := parent(t, path)
	switch {
	case errno != 0:
		return "", errno
	case last == "" || last == ".":
		return "", dot
	case last == "..":
		return "", dotdot
	case len(last) > keymap.MaxNameLen:
		return "", syscall.ENAMETOOLONG
	}
	return keymap.Join(dir, last), 0
}

// isDot reports whether a last component names the directory itself or its parent: the
// kernel answers create, mkdir, unlink, rmdir and rename of such a path without the mount.
func isDot(last string) bool { return last == "" || last == "." || last == ".." }

// Resolve returns the canonical path (names joined by '/', "" for the root) of what path
// names, or the errno of resolving it.
func (m *Model) Resolve(path string) (string, syscall.Errno) {
	p, _, errno := resolve(m.Tree(), path)
	return p, errno
}

// Stat is lstat(2) (S9): the kind and size of what path names (K1-K4), or ENOENT.
func (m *Model) Stat(path string) (Node, syscall.Errno) {
	_, n, errno := resolve(m.Tree(), path)
	return n, errno
}

// ReadDir lists a directory (K6): its entries in byte order, each name once, with the kind
// the name has (K4); local directories and files being written are listed too (S4, S7).
// "." and ".." are not included. A file is ENOTDIR.
func (m *Model) ReadDir(path string) ([]keymap.Entry, syscall.Errno) {
	t := m.Tree()
	p, n, errno := resolve(t, path)
	if errno != 0 {
		return nil, errno
	}
	if n.Kind != keymap.Dir {
		return nil, syscall.ENOTDIR
	}
	return children(t, p), 0
}

// Read opens path for reading and reads all of it (S1). A directory opens but reads EISDIR;
// a file being written cannot be opened for reading (EPERM, S2).
func (m *Model) Read(path string) ([]byte, syscall.Errno) {
	p, n, errno := resolve(m.Tree(), path)
	switch {
	case errno != 0:
		return nil, errno
	case n.Kind == keymap.Dir:
		return nil, syscall.EISDIR
	case m.writer(p) != nil:
		return nil, syscall.EPERM
	}
	return []byte(m.keys[keymap.FileKey(m.opts.Prefix, p)]), 0
}

// Create is open(O_CREAT|O_EXCL|O_WRONLY): a new file, empty and visible at once, being
// written until it is closed (S4). A name that exists, as a file or a directory, in the bucket
// or locally, is EEXIST (S6); so is "." or "..". A missing parent is ENOENT, a file as parent
// ENOTDIR.
func (m *Model) Create(path string) (Handle, syscall.Errno) {
	_, p, _, exists, errno := m.at(path, syscall.EEXIST, syscall.EEXIST)
	if errno == 0 {
		errno = streamrule.Create(streamrule.Target{Exists: exists}).Errno
	}
	if errno != 0 {
		return 0, errno
	}
	return m.open(p), 0
}

// at is what an operation on the last name of path finds: the tree, the canonical path and
// what is there (ok). errno is what the kernel answers before the mount sees the call when
// the name is "." (dot) or ".." (dotdot), or when a parent is missing or not a directory.
func (m *Model) at(path string, dot, dotdot syscall.Errno) (t map[string]Node, p string, n Node, ok bool, errno syscall.Errno) {
	t = m.Tree()
	if p, errno = named(t, path, dot, dotdot); errno != 0 {
		return t, "", Node{}, false, errno
	}
	n, ok = t[p]
	return t, p, n, ok, 0
}

func (m *Model) open(path string) Handle {
	m.next++
	m.handles[m.next] = &handle{path: path}
	return m.next
}

// OpenTrunc is open(O_WRONLY|O_TRUNC) of an existing file: it replaces the object when the
// handle is closed, and needs --allow-overwrite (EPERM without, S6). A file being written
// cannot be opened for writing again (EPERM, S2). A directory is EISDIR.
func (m *Model) OpenTrunc(path string) (Handle, syscall.Errno) {
	p, n, errno := resolve(m.Tree(), path)
	if errno != 0 {
		return 0, errno
	}
	if v := streamrule.OpenWrite(m.target(p, n), true, m.rules()); !v.Allowed() {
		return 0, v.Errno
	}
	return m.open(p), 0
}

// OpenWrite is open(O_WRONLY) of an existing file without O_TRUNC: streaming mode cannot
// append to or edit an object, so it is always EPERM (S6); a directory is EISDIR.
func (m *Model) OpenWrite(path string) syscall.Errno {
	p, n, errno := resolve(m.Tree(), path)
	if errno != 0 {
		return errno
	}
	return streamrule.OpenWrite(m.target(p, n), false, m.rules()).Errno
}

// target is what the rules need to know of the existing path p, whose node is n.
func (m *Model) target(p string, n Node) streamrule.Target {
	return streamrule.Target{Exists: true, Dir: n.Kind == keymap.Dir, BeingWritten: m.writer(p) != nil}
}

func (m *Model) rules() streamrule.Options {
	return streamrule.Options{AllowOverwrite: m.opts.AllowOverwrite, AllowDelete: m.opts.AllowDelete}
}

// Write is pwrite(2) of data (not empty) at off. Writes are sequential (S4): any other offset
// than the bytes written so far is EINVAL and aborts the upload; later writes are EIO. After
// fsync the upload is complete and writes are EPERM.
func (m *Model) Write(h Handle, off int64, data []byte) syscall.Errno {
	hd := m.handles[h]
	if hd == nil {
		return syscall.EBADF
	}
	var v streamrule.Verdict
	if hd.up, v = hd.up.Write(off, len(data)); !v.Allowed() {
		return v.Errno
	}
	hd.data = append(hd.data, data...)
	return 0
}

// Fsync completes the upload at once (S4): the object is in the bucket and the file is no
// longer being written. An aborted upload is EIO.
func (m *Model) Fsync(h Handle) syscall.Errno {
	hd := m.handles[h]
	if hd == nil {
		return syscall.EBADF
	}
	return m.commit(hd)
}

// Close is close(2) of a write handle: it commits the object with the bytes written, an empty
// object if none were (S4, S5), unless fsync already did. After an aborted upload nothing is
// written, the path shows again what the bucket holds, and close reports EIO: the program
// learns that its file was not stored.
func (m *Model) Close(h Handle) syscall.Errno {
	hd := m.handles[h]
	if hd == nil {
		return syscall.EBADF
	}
	delete(m.handles, h)
	return m.commit(hd)
}

// commit is the rule's commit of the handle's upload: the first one puts the handle's object
// into the bucket. Its local ancestor directories are now in the bucket and stop being local
// (S7): once the file goes, so do they.
func (m *Model) commit(hd *handle) syscall.Errno {
	up, commit, v := hd.up.Commit()
	hd.up = up
	if !commit {
		return v.Errno
	}
	m.keys[keymap.FileKey(m.opts.Prefix, hd.path)] = string(hd.data)
	for d, _ := keymap.Split(hd.path); d != ""; d, _ = keymap.Split(d) {
		delete(m.localDirs, d)
	}
	return 0
}

// Unlink deletes a file's object at once (S6). A directory is EISDIR (so is "." or ".."), a
// file being written EPERM, and without --allow-delete EPERM. When the object goes, a file of
// the same name that a directory shadowed can reappear (K4).
func (m *Model) Unlink(path string) syscall.Errno {
	_, p, n, ok, errno := m.at(path, syscall.EISDIR, syscall.EISDIR)
	if errno != 0 {
		return errno
	}
	tg := streamrule.Target{}
	if ok {
		tg = m.target(p, n)
	}
	if v := streamrule.Unlink(tg, m.rules()); !v.Allowed() {
		return v.Errno
	}
	delete(m.keys, keymap.FileKey(m.opts.Prefix, p))
	return 0
}

// Mkdir creates a local directory (S7): nothing is written to the bucket; it is listed in its
// parent and lists its local children. A name that exists is EEXIST, as is "." or "..".
func (m *Model) Mkdir(path string) syscall.Errno {
	_, p, _, exists, errno := m.at(path, syscall.EEXIST, syscall.EEXIST)
	if errno == 0 {
		errno = streamrule.Create(streamrule.Target{Exists: exists}).Errno
	}
	if errno != 0 {
		return errno
	}
	m.localDirs[p] = true
	return 0
}

// Rmdir removes an empty local directory (S7). Missing is ENOENT, a file ENOTDIR, a directory
// with entries ENOTEMPTY. A directory that exists in the bucket without visible entries (a
// marker, or only hidden keys below it) is EPERM: streaming mode never deletes what it did not
// create. The kernel answers "." with EINVAL and ".." with ENOTEMPTY.
func (m *Model) Rmdir(path string) syscall.Errno {
	t, p, n, ok, errno := m.at(path, syscall.EINVAL, syscall.ENOTEMPTY)
	if errno != 0 {
		return errno
	}
	dirKey := keymap.DirKey(m.opts.Prefix, p)
	inBucket := slices.ContainsFunc(slices.Collect(maps.Keys(m.keys)), func(k string) bool { return strings.HasPrefix(k, dirKey) })
	if v := streamrule.Rmdir(streamrule.Target{Exists: ok, Dir: n.Kind == keymap.Dir}, len(children(t, p)) > 0, inBucket); !v.Allowed() {
		return v.Errno
	}
	delete(m.localDirs, p)
	return 0
}

// Rename is not supported in streaming mode (S8): ENOTSUP once the kernel has made its own
// checks, which come first: EBUSY for "." or "..", ENOENT for a missing source, EINVAL for a
// directory moved below itself, ENOTEMPTY for a target that is an ancestor of the source,
// success without a call for a path renamed to itself, EISDIR for a file over a directory and
// ENOTDIR for a directory over a file.
func (m *Model) Rename(from, to string) syscall.Errno {
	t := m.Tree()
	fromDir, fromLast, errno := parent(t, from)
	if errno != 0 {
		return errno
	}
	toDir, toLast, errno := parent(t, to)
	switch {
	case errno != 0:
		return errno
	case isDot(fromLast), isDot(toLast):
		return syscall.EBUSY
	case len(fromLast) > keymap.MaxNameLen, len(toLast) > keymap.MaxNameLen:
		return syscall.ENAMETOOLONG
	}
	src, dst := keymap.Join(fromDir, fromLast), keymap.Join(toDir, toLast)
	sn, ok := t[src]
	if !ok {
		return syscall.ENOENT
	}
	dn, dstExists := t[dst]
	switch {
	case src == dst:
		return 0
	case isAncestorOrSelf(src, toDir) && fromDir != toDir:
		return syscall.EINVAL
	case isAncestorOrSelf(dst, fromDir) && fromDir != toDir:
		return syscall.ENOTEMPTY
	case dstExists && sn.Kind != keymap.Dir && dn.Kind == keymap.Dir:
		return syscall.EISDIR
	case dstExists && sn.Kind == keymap.Dir && dn.Kind != keymap.Dir:
		return syscall.ENOTDIR
	}
	return streamrule.Unsupported("rename").Errno
}

// isAncestorOrSelf reports whether directory path a is p or contains it.
func isAncestorOrSelf(a, p string) bool {
	return a == p || keymap.Below(p, a)
}

// RemotePut is another client writing an object into the bucket. The key may be hidden (K3)
// or outside the prefix (K8); the mount then shows nothing of it.
func (m *Model) RemotePut(key string, data []byte) { m.keys[key] = string(data) }

// RemoteDelete is another client deleting an object from the bucket.
func (m *Model) RemoteDelete(key string) { delete(m.keys, key) }
