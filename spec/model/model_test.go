package model

import (
	"slices"
	"syscall"
	"testing"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

func newModel(prefix string, keys ...string) *Model {
	m := New(Options{Prefix: prefix, AllowOverwrite: true, AllowDelete: true})
	for _, k := range keys {
		m.RemotePut(k, []byte("<"+k+">"))
	}
	return m
}

func names(es []keymap.Entry) []string {
	var out []string
	for _, e := range es {
		n := e.Name
		if e.Kind == keymap.Dir {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

func wantErrno(t *testing.T, what string, got, want syscall.Errno) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: errno %v (%d), want %v (%d)", what, got, got, want, want)
	}
}

func wantList(t *testing.T, m *Model, dir string, want ...string) {
	t.Helper()
	es, errno := m.ReadDir(dir)
	wantErrno(t, "readdir "+dir, errno, 0)
	if got := names(es); !slices.Equal(got, want) {
		t.Fatalf("readdir %q = %q, want %q", dir, got, want)
	}
}

func wantStat(t *testing.T, m *Model, path string, kind keymap.Kind, size int64) {
	t.Helper()
	n, errno := m.Stat(path)
	wantErrno(t, "stat "+path, errno, 0)
	if n.Kind != kind || (kind == keymap.File && n.Size != size) {
		t.Fatalf("stat %q = %+v, want %v size %d", path, n, kind, size)
	}
}

func TestKeysMakeTheTree(t *testing.T) {
	// K1, K2, K3, K6, K8.
	m := newModel("p/", "p/a/b", "p/d/", "p/x/../y", "p/h//z", "p/-a-", "p/-a/q", "p", "other/z", "p/./w")
	wantList(t, m, "", "-a/", "-a-", "a/", "d/", "h/", "x/")
	wantList(t, m, "x")
	wantList(t, m, "h")
	wantStat(t, m, "a/b", keymap.File, len64("<p/a/b>"))
	_, errno := m.Stat("other")
	wantErrno(t, "stat outside the prefix", errno, syscall.ENOENT)
	_, errno = m.ReadDir("a/b")
	wantErrno(t, "readdir of a file", errno, syscall.ENOTDIR)
}

func len64(s string) int64 { return int64(len(s)) }

func TestShadowing(t *testing.T) {
	// K4: the directory wins; deleting the last key below it shows the file again.
	m := newModel("", "a", "a/x")
	wantStat(t, m, "a", keymap.Dir, 0)
	wantList(t, m, "", "a/")
	wantErrno(t, "unlink a", m.Unlink("a"), syscall.EISDIR)
	wantErrno(t, "unlink a/x", m.Unlink("a/x"), 0)
	wantStat(t, m, "a", keymap.File, len64("<a>"))
	got, errno := m.Read("a")
	wantErrno(t, "read a", errno, 0)
	if string(got) != "<a>" {
		t.Fatalf("read a = %q", got)
	}
}

func TestPathResolution(t *testing.T) {
	m := newModel("", "a/b", "f")
	wantStat(t, m, "a/.", keymap.Dir, 0)
	wantStat(t, m, "a/..", keymap.Dir, 0)
	wantStat(t, m, "./f", keymap.File, 3)
	_, errno := m.Stat("f/.")
	wantErrno(t, "stat f/.", errno, syscall.ENOTDIR)
	_, errno = m.Stat("f/x")
	wantErrno(t, "stat f/x", errno, syscall.ENOTDIR)
	_, errno = m.Stat("g/x")
	wantErrno(t, "stat g/x", errno, syscall.ENOENT)
	_, errno = m.Create("f/x")
	wantErrno(t, "create below a file", errno, syscall.ENOTDIR)
	_, errno = m.Create("g/x")
	wantErrno(t, "create below nothing", errno, syscall.ENOENT)
	_, errno = m.Create("a/.")
	wantErrno(t, "create a/.", errno, syscall.EEXIST)
	wantErrno(t, "mkdir a/..", m.Mkdir("a/.."), syscall.EEXIST)
	wantErrno(t, "unlink a/.", m.Unlink("a/."), syscall.EISDIR)
	wantErrno(t, "rmdir a/.", m.Rmdir("a/."), syscall.EINVAL)
	wantErrno(t, "rmdir a/..", m.Rmdir("a/.."), syscall.ENOTEMPTY)
	_, errno = m.Read(".")
	wantErrno(t, "read .", errno, syscall.EISDIR)
	if p, errno := m.Resolve("./a/../a/b"); p != "a/b" || errno != 0 {
		t.Fatalf("resolve ./a/../a/b = %q %v", p, errno)
	}
}

func TestWriteLifecycle(t *testing.T) {
	// S4, S2, S5: visible while written, unreadable, committed at close.
	m := newModel("pre/")
	h, errno := m.Create("f")
	wantErrno(t, "create", errno, 0)
	wantStat(t, m, "f", keymap.File, 0)
	wantErrno(t, "write", m.Write(h, 0, []byte("abc")), 0)
	wantStat(t, m, "f", keymap.File, 3)
	_, errno = m.Read("f")
	wantErrno(t, "read while written", errno, syscall.EPERM)
	_, errno = m.OpenTrunc("f")
	wantErrno(t, "second writer", errno, syscall.EPERM)
	_, errno = m.Create("f")
	wantErrno(t, "create again", errno, syscall.EEXIST)
	wantErrno(t, "unlink while written", m.Unlink("f"), syscall.EPERM)
	if len(m.Keys()) != 0 {
		t.Fatalf("bucket before close: %v", m.Keys())
	}
	wantErrno(t, "write", m.Write(h, 3, []byte("de")), 0)
	wantErrno(t, "close", m.Close(h), 0)
	if got := m.Keys()["pre/f"]; got != "abcde" {
		t.Fatalf("object = %q", got)
	}
	got, errno := m.Read("f")
	wantErrno(t, "read", errno, 0)
	if string(got) != "abcde" {
		t.Fatalf("read = %q", got)
	}

	// S5: an empty file.
	h, _ = m.Create("e")
	wantErrno(t, "close empty", m.Close(h), 0)
	if v, ok := m.Keys()["pre/e"]; !ok || v != "" {
		t.Fatalf("empty object: %q %v", v, ok)
	}
}

func TestNonSequentialWriteAborts(t *testing.T) {
	// S4: EINVAL, the upload is aborted, close commits nothing and reports EIO.
	m := newModel("", "old")
	h, _ := m.Create("f")
	wantErrno(t, "write", m.Write(h, 0, []byte("ab")), 0)
	wantErrno(t, "write at 5", m.Write(h, 5, []byte("x")), syscall.EINVAL)
	wantErrno(t, "write after abort", m.Write(h, 2, []byte("x")), syscall.EIO)
	wantStat(t, m, "f", keymap.File, 2)
	wantErrno(t, "close", m.Close(h), syscall.EIO)
	_, errno := m.Stat("f")
	wantErrno(t, "stat after aborted close", errno, syscall.ENOENT)

	// An aborted overwrite leaves the old object as it was.
	h, _ = m.OpenTrunc("old")
	wantStat(t, m, "old", keymap.File, 0)
	wantErrno(t, "write at 1", m.Write(h, 1, []byte("x")), syscall.EINVAL)
	wantErrno(t, "close", m.Close(h), syscall.EIO)
	wantStat(t, m, "old", keymap.File, len64("<old>"))
}

func TestFsync(t *testing.T) {
	// S4: fsync completes the upload; later writes fail; the file is readable.
	m := newModel("")
	h, _ := m.Create("f")
	wantErrno(t, "write", m.Write(h, 0, []byte("ab")), 0)
	wantErrno(t, "fsync", m.Fsync(h), 0)
	if m.Keys()["f"] != "ab" {
		t.Fatalf("not committed by fsync: %v", m.Keys())
	}
	wantErrno(t, "write after fsync", m.Write(h, 2, []byte("c")), syscall.EPERM)
	if _, errno := m.Read("f"); errno != 0 {
		t.Fatalf("read after fsync: %v", errno)
	}
	wantErrno(t, "close", m.Close(h), 0)
	if m.Keys()["f"] != "ab" {
		t.Fatalf("changed by close: %v", m.Keys())
	}
}

func TestOverwriteAndDeleteFlags(t *testing.T) {
	// S6.
	m := New(Options{})
	m.RemotePut("f", []byte("x"))
	_, errno := m.OpenTrunc("f")
	wantErrno(t, "overwrite without the flag", errno, syscall.EPERM)
	wantErrno(t, "open without O_TRUNC", m.OpenWrite("f"), syscall.EPERM)
	wantErrno(t, "delete without the flag", m.Unlink("f"), syscall.EPERM)

	m = newModel("", "f")
	h, errno := m.OpenTrunc("f")
	wantErrno(t, "overwrite", errno, 0)
	wantStat(t, m, "f", keymap.File, 0)
	m.Write(h, 0, []byte("new"))
	wantErrno(t, "close", m.Close(h), 0)
	if m.Keys()["f"] != "new" {
		t.Fatalf("not replaced: %v", m.Keys())
	}
	wantErrno(t, "open without O_TRUNC", m.OpenWrite("f"), syscall.EPERM)
	wantErrno(t, "unlink", m.Unlink("f"), 0)
	wantErrno(t, "unlink again", m.Unlink("f"), syscall.ENOENT)
}

func TestLocalDirectories(t *testing.T) {
	// S7.
	m := newModel("", "d/", "h/./x")
	wantErrno(t, "mkdir d", m.Mkdir("d"), syscall.EEXIST)
	wantErrno(t, "mkdir l", m.Mkdir("l"), 0)
	wantErrno(t, "mkdir l/m", m.Mkdir("l/m"), 0)
	wantList(t, m, "", "d/", "h/", "l/")
	wantList(t, m, "l", "m/")
	if len(m.Keys()) != 2 {
		t.Fatalf("mkdir wrote to the bucket: %v", m.Keys())
	}
	wantErrno(t, "rmdir l", m.Rmdir("l"), syscall.ENOTEMPTY)
	wantErrno(t, "rmdir l/m", m.Rmdir("l/m"), 0)
	wantErrno(t, "rmdir l", m.Rmdir("l"), 0)
	wantErrno(t, "rmdir l again", m.Rmdir("l"), syscall.ENOENT)
	wantErrno(t, "rmdir marker", m.Rmdir("d"), syscall.EPERM)
	wantErrno(t, "rmdir hidden keys", m.Rmdir("h"), syscall.EPERM)
	wantErrno(t, "rmdir a file", m.Rmdir("h/./x"), syscall.ENOENT)

	// A file being written keeps its local directory non-empty; once committed, the
	// directory is in the bucket, and goes away with its last file.
	wantErrno(t, "mkdir w", m.Mkdir("w"), 0)
	h, _ := m.Create("w/f")
	wantErrno(t, "rmdir w while written", m.Rmdir("w"), syscall.ENOTEMPTY)
	wantErrno(t, "close", m.Close(h), 0)
	wantErrno(t, "unlink w/f", m.Unlink("w/f"), 0)
	_, errno := m.Stat("w")
	wantErrno(t, "stat w after its last file", errno, syscall.ENOENT)

	// A local directory shadows an object of its name put by another client (K4).
	wantErrno(t, "mkdir s", m.Mkdir("s"), 0)
	m.RemotePut("s", []byte("x"))
	wantStat(t, m, "s", keymap.Dir, 0)
	wantList(t, m, "", "d/", "h/", "s/")
	wantErrno(t, "rmdir s", m.Rmdir("s"), 0)
	wantStat(t, m, "s", keymap.File, 1)
}

func TestLocalThingsKeepTheirParents(t *testing.T) {
	// A local directory or a file being written in a bucket directory keeps that directory
	// when its keys go (S4, S7).
	m := newModel("", "a/x")
	wantErrno(t, "mkdir a/l", m.Mkdir("a/l"), 0)
	h, _ := m.Create("a/w")
	m.RemoteDelete("a/x")
	wantList(t, m, "a", "l/", "w")
	m.Close(h)
	m.RemoteDelete("a/w")
	wantList(t, m, "a", "l/")
}

func TestRename(t *testing.T) {
	// S8, after the kernel's own checks.
	m := newModel("", "a/b", "f", "g")
	for _, c := range []struct {
		from, to string
		want     syscall.Errno
	}{
		{"f", "g", syscall.ENOTSUP},
		{"f", "n", syscall.ENOTSUP},
		{"a", "n", syscall.ENOTSUP},
		{"f", "f", 0},
		{"f", "./f", 0},
		{"n", "f", syscall.ENOENT},
		{"f", "n/x", syscall.ENOENT},
		{"f", "a", syscall.EISDIR},
		{"a", "f", syscall.ENOTDIR},
		{"a", "a/c", syscall.EINVAL},
		{"a/b", "a", syscall.ENOTEMPTY},
		{".", "n", syscall.EBUSY},
		{"f", "a/..", syscall.EBUSY},
	} {
		wantErrno(t, "rename "+c.from+" "+c.to, m.Rename(c.from, c.to), c.want)
	}
}

func TestPrefix(t *testing.T) {
	// K8: keys outside the prefix, and the prefix's own marker, show nothing.
	m := newModel("a/", "a", "a/", "a-/x", "b", "a//x", "a/b")
	wantList(t, m, "", "b")
	h, errno := m.Create("c")
	wantErrno(t, "create", errno, 0)
	m.Close(h)
	if _, ok := m.Keys()["a/c"]; !ok {
		t.Fatalf("created key: %v", m.Keys())
	}
}
