package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// apply performs one table operation through the kernel and returns what it observed.
func apply(e *env, o op) (result, error) {
	r, err := apply1(e, o)
	if err == nil && o.after != "" {
		b, rerr := os.ReadFile(e.m.Path(o.after))
		if rerr != nil {
			return r, fmt.Errorf("reading %s after %s: %w", o.after, o.kind, rerr)
		}
		r.data = string(b)
	}
	return r, err
}

func apply1(e *env, o op) (result, error) {
	m := e.m
	p := m.Path(o.path)
	switch o.kind {
	case "readdir", "readdir-dots":
		n, err := getdents(p)
		return result{names: n}, err
	case "stat":
		return stat(p)
	case "read":
		b, err := os.ReadFile(p)
		return result{data: string(b)}, err
	case "pread":
		b, err := pread(p, o.off, o.n)
		return result{data: string(b)}, err
	case "open-write":
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		return result{}, err
	case "rdwr-read":
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		return result{data: string(b)}, err
	case "write":
		return result{}, writeFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, o.data)
	case "overwrite":
		return result{}, writeFile(p, os.O_WRONLY|os.O_TRUNC, o.data)
	case "append":
		return result{}, writeFile(p, os.O_WRONLY|os.O_APPEND, o.data)
	case "create-excl":
		return result{}, writeFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, "")
	case "shell-write":
		out, err := exec.Command("sh", "-c", `echo "$1" > "$2"`, "sh", o.data, p).CombinedOutput()
		if err != nil {
			return result{}, errors.New(string(out))
		}
		return result{}, nil
	case "touch":
		if out, err := exec.Command("touch", p).CombinedOutput(); err != nil {
			return result{}, errors.New(string(out))
		}
		return result{}, nil
	case "read-while-writing", "write-twice", "stat-while-writing", "unlink-while-writing", "utimens-while-writing":
		return whileWriting(m, o)
	case "write-nonseq", "write-nonseq-close":
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if _, err := f.Write([]byte("abc")); err != nil {
			return result{}, err
		}
		_, err = f.WriteAt([]byte("x"), 10)
		if o.kind == "write-nonseq-close" {
			f.Close()
			return result{}, nil
		}
		return result{}, err
	case "fsync-then-write", "fsync-then-check":
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if _, err := f.Write([]byte(o.data)); err != nil {
			return result{}, err
		}
		if err := f.Sync(); err != nil {
			return result{}, err
		}
		if o.kind == "fsync-then-check" {
			return result{}, nil // the bucket is checked while the file is still open
		}
		_, err = f.Write([]byte("more"))
		return result{}, err
	case "unlink":
		return result{}, noEINTR(func() error { return syscall.Unlink(p) })
	case "unlink-then-stat":
		if err := noEINTR(func() error { return syscall.Unlink(p) }); err != nil {
			return result{}, err
		}
		time.Sleep(1100 * time.Millisecond) // the kernel's cached entry for the directory (S3)
		return stat(m.Path(o.to))
	case "mkdir":
		if err := noEINTR(func() error { return syscall.Mkdir(p, 0o755) }); err != nil {
			return result{}, err
		}
		n, err := getdents(p)
		return result{names: n}, err
	case "mkdir-write":
		if err := noEINTR(func() error { return syscall.Mkdir(m.Path("d"), 0o755) }); err != nil {
			return result{}, err
		}
		return result{}, writeFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, o.data)
	case "mkdir-rmdir":
		if err := noEINTR(func() error { return syscall.Mkdir(p, 0o755) }); err != nil {
			return result{}, err
		}
		if err := noEINTR(func() error { return syscall.Rmdir(p) }); err != nil {
			return result{}, err
		}
		return stat(p)
	case "rmdir":
		return result{}, noEINTR(func() error { return syscall.Rmdir(p) })
	case "rename":
		return result{}, noEINTR(func() error { return syscall.Rename(p, m.Path(o.to)) })
	case "link":
		return result{}, noEINTR(func() error { return syscall.Link(p, m.Path(o.to)) })
	case "symlink":
		return result{}, noEINTR(func() error { return syscall.Symlink(p, m.Path(o.to)) })
	case "chmod":
		return result{}, noEINTR(func() error { return syscall.Chmod(p, 0o600) })
	case "chown":
		return result{}, noEINTR(func() error { return syscall.Chown(p, 1234, 1234) })
	case "truncate":
		return result{}, os.Truncate(p, 1)
	case "setxattr":
		return result{}, noEINTR(func() error { return syscall.Setxattr(p, "user.test", []byte("v"), 0) })
	case "utimens":
		now := time.Now()
		return result{}, os.Chtimes(p, now, now)
	case "seek-rewrite":
		// write, seek back, rewrite the first byte, read back after close
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return result{}, err
		}
		if _, err := f.Write([]byte(o.data)); err != nil {
			f.Close()
			return result{}, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return result{}, err
		}
		if _, err := f.Write([]byte("J")); err != nil {
			f.Close()
			return result{}, err
		}
		if err := f.Close(); err != nil {
			return result{}, err
		}
		return readBack(p)
	case "inplace-write":
		// pwrite o.data at o.off into an existing file opened O_RDWR, then read it back
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return result{}, err
		}
		if _, err := f.WriteAt([]byte(o.data), o.off); err != nil {
			f.Close()
			return result{}, err
		}
		if err := f.Close(); err != nil {
			return result{}, err
		}
		return readBack(p)
	case "truncate-to":
		if err := os.Truncate(p, o.n); err != nil {
			return result{}, err
		}
		return readBack(p)
	case "ftruncate-write":
		// O_RDWR, ftruncate to o.n, write o.data at the end, read back
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if err := f.Truncate(o.n); err != nil {
			return result{}, err
		}
		if _, err := f.WriteAt([]byte(o.data), o.n); err != nil {
			return result{}, err
		}
		if err := f.Close(); err != nil {
			return result{}, err
		}
		return readBack(p)
	case "append-twice":
		// O_APPEND writes go to the end even after a seek to the start
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if _, err := f.Write([]byte(o.data)); err != nil {
			return result{}, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return result{}, err
		}
		if _, err := f.Write([]byte(o.data)); err != nil {
			return result{}, err
		}
		if err := f.Close(); err != nil {
			return result{}, err
		}
		return readBack(p)
	case "rename-read":
		if err := noEINTR(func() error { return syscall.Rename(p, m.Path(o.to)) }); err != nil {
			return result{}, err
		}
		if _, err := os.Lstat(p); !errors.Is(err, syscall.ENOENT) {
			return result{}, fmt.Errorf("after rename, lstat of the old name: %v, want ENOENT", err)
		}
		return readBack(m.Path(o.to))
	case "rename-dir":
		if err := noEINTR(func() error { return syscall.Rename(p, m.Path(o.to)) }); err != nil {
			return result{}, err
		}
		if _, err := os.Lstat(p); !errors.Is(err, syscall.ENOENT) {
			return result{}, fmt.Errorf("after rename, lstat of the old name: %v, want ENOENT", err)
		}
		n, err := getdents(m.Path(o.to))
		return result{names: n}, err
	case "unlink-open-read":
		// a descriptor open on an unlinked file still reads its data
		f, err := os.Open(p)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if err := noEINTR(func() error { return syscall.Unlink(p) }); err != nil {
			return result{}, err
		}
		if _, err := os.Lstat(p); !errors.Is(err, syscall.ENOENT) {
			return result{}, fmt.Errorf("after unlink, lstat: %v, want ENOENT", err)
		}
		b, err := io.ReadAll(f)
		return result{data: string(b)}, err
	case "symlink-readlink":
		if err := noEINTR(func() error { return syscall.Symlink(o.data, p) }); err != nil {
			return result{}, err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return result{}, err
		}
		k := "not a symlink"
		if st.Mode()&os.ModeSymlink != 0 {
			k = "symlink"
		}
		target, err := os.Readlink(p)
		return result{kind: k, data: target}, err
	case "chmod-stat":
		if err := noEINTR(func() error { return syscall.Chmod(p, 0o600) }); err != nil {
			return result{}, err
		}
		return stat(p)
	case "chown-stat":
		if err := noEINTR(func() error { return syscall.Chown(p, 1234, 1234) }); err != nil {
			return result{}, err
		}
		return stat(p)
	case "utimens-stat":
		t := time.Unix(1000000000, 0)
		if err := os.Chtimes(p, t, t); err != nil {
			return result{}, err
		}
		return stat(p)
	case "attrs-remount":
		// chmod, chown and utimens, then unmount and mount the same sync dir again
		if err := noEINTR(func() error { return syscall.Chmod(p, 0o600) }); err != nil {
			return result{}, err
		}
		if err := noEINTR(func() error { return syscall.Chown(p, 1234, 1234) }); err != nil {
			return result{}, err
		}
		t := time.Unix(1000000000, 0)
		if err := os.Chtimes(p, t, t); err != nil {
			return result{}, err
		}
		e.remount()
		return stat(e.m.Path(o.path))
	case "statfs":
		return result{}, statfsMatches(p, e.syncDir)
	case "link-write":
		// link, then write through the new name and read through the old
		if err := noEINTR(func() error { return syscall.Link(p, m.Path(o.to)) }); err != nil {
			return result{}, err
		}
		if err := writeFile(m.Path(o.to), os.O_WRONLY, o.data); err != nil {
			return result{}, err
		}
		b, err := os.ReadFile(p)
		return result{data: string(b)}, err
	case "setxattr-get":
		if err := noEINTR(func() error { return syscall.Setxattr(p, "user.test", []byte(o.data), 0) }); err != nil {
			return result{}, err
		}
		buf := make([]byte, 256)
		n, err := syscall.Getxattr(p, "user.test", buf)
		if err != nil {
			return result{}, err
		}
		return result{data: string(buf[:n])}, nil
	case "chmod-as-other", "write-as-other", "unlink-as-other":
		return result{}, asOther(p, o.kind)
	case "mknod":
		return result{}, noEINTR(func() error { return syscall.Mknod(p, syscall.S_IFIFO|0o644, 0) })
	case "write-nonseq-read":
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if _, err := f.Write([]byte("abc")); err != nil {
			return result{}, err
		}
		if _, err := f.WriteAt([]byte("x"), 10); err != nil {
			return result{}, err
		}
		if err := f.Close(); err != nil {
			return result{}, err
		}
		return readBack(p)
	}
	panic("unknown op " + o.kind)
}

// readBack reads a whole file into result.data.
func readBack(p string) (result, error) {
	b, err := os.ReadFile(p)
	return result{data: string(b)}, err
}

// statfsMatches checks that statfs of the mount reports the disk of dir: the same block
// size and total, and free space within what other writers could change meanwhile.
func statfsMatches(mnt, dir string) error {
	var a, b syscall.Statfs_t
	if err := syscall.Statfs(mnt, &a); err != nil {
		return err
	}
	if err := syscall.Statfs(dir, &b); err != nil {
		return err
	}
	if a.Frsize != b.Frsize || a.Blocks != b.Blocks || a.Files != b.Files {
		return fmt.Errorf("statfs: mount frsize %d blocks %d files %d, sync dir's disk frsize %d blocks %d files %d",
			a.Frsize, a.Blocks, a.Files, b.Frsize, b.Blocks, b.Files)
	}
	if d := int64(a.Bavail) - int64(b.Bavail); d > 1<<16 || d < -(1<<16) {
		return fmt.Errorf("statfs: mount has %d blocks available, the sync dir's disk %d", a.Bavail, b.Bavail)
	}
	return nil
}

func stat(p string) (result, error) {
	st, err := os.Stat(p)
	if err != nil {
		return result{}, err
	}
	k := "file"
	if st.IsDir() {
		k = "dir"
	}
	sys := st.Sys().(*syscall.Stat_t)
	return result{kind: k, size: st.Size(), perm: st.Mode().Perm(), uid: sys.Uid, gid: sys.Gid, mtime: st.ModTime().Unix()}, nil
}

func writeFile(p string, flags int, data string) error {
	f, err := os.OpenFile(p, flags, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(data)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// whileWriting runs a second operation on a file that is open for writing (S2, S6, S8).
func whileWriting(m *harness.Mount, o op) (result, error) {
	p := m.Path(o.path)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return result{}, err
	}
	defer f.Close()
	if _, err := f.Write([]byte(o.data)); err != nil {
		return result{}, err
	}
	switch o.kind {
	case "read-while-writing":
		b, err := os.ReadFile(p)
		return result{data: string(b)}, err
	case "write-twice":
		g, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err == nil {
			g.Close()
		}
		return result{}, err
	case "stat-while-writing":
		return stat(p)
	case "unlink-while-writing":
		return result{}, noEINTR(func() error { return syscall.Unlink(p) })
	case "utimens-while-writing":
		now := time.Now()
		return result{}, os.Chtimes(p, now, now)
	}
	panic("unknown op " + o.kind)
}

// bucketHolds checks what the bucket holds at key, waiting a little: a file closed without
// a write is committed at release, which the kernel sends after close(2) returns (S5).
func bucketHolds(m *harness.Mount, key string, want *string) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := readKey(m, key)
		switch {
		case want == absent && errors.Is(err, s3.ErrNotFound):
			return nil
		case want != absent && err == nil && got == *want:
			return nil
		case time.Now().After(deadline):
			if err != nil {
				return fmt.Errorf("bucket key %q: %v, want %s", key, err, describe(want))
			}
			return fmt.Errorf("bucket key %q holds %d bytes %.40q, want %s", key, len(got), got, describe(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describe(c *string) string {
	if c == absent {
		return "no object"
	}
	return "content " + abbreviateString(*c)
}

func abbreviateString(s string) string {
	if len(s) > 40 {
		return "\"" + s[:40] + "...\""
	}
	return "\"" + s + "\""
}

func readKey(m *harness.Mount, key string) (string, error) {
	body, _, err := m.Store.Get(context.Background(), key, 0, -1, "")
	if err != nil {
		return "", err
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	return string(b), err
}

// asOther does one operation on p as user and group 65534, as another user on the machine
// would: setfsuid and setfsgid on a thread of its own, relative to a descriptor of p's
// directory opened before, so that the private directories above the mount are not in the
// way. The thread ends with the goroutine (never unlocked), so the credentials die with it.
func asOther(p, kind string) error {
	dir, err := os.Open(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer dir.Close()
	fd, base := int(dir.Fd()), filepath.Base(p)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		unix.Setfsgid(65534)
		unix.Setfsuid(65534)
		switch kind {
		case "chmod-as-other":
			done <- noEINTR(func() error { return unix.Fchmodat(fd, base, 0o600, 0) })
		case "write-as-other":
			f, err := unix.Openat(fd, base, unix.O_WRONLY, 0)
			if err == nil {
				unix.Close(f)
			}
			done <- err
		case "unlink-as-other":
			done <- noEINTR(func() error { return unix.Unlinkat(fd, base, 0) })
		default:
			done <- fmt.Errorf("asOther: no operation %q", kind)
		}
	}()
	return <-done
}
