package conformance

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// apply performs one table operation through the kernel and returns what it observed.
func apply(m *harness.Mount, o op) (result, error) {
	p := m.Path(o.path)
	switch o.kind {
	case "readdir":
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
		return result{}, syscall.Unlink(p)
	case "unlink-then-stat":
		if err := syscall.Unlink(p); err != nil {
			return result{}, err
		}
		time.Sleep(1100 * time.Millisecond) // the kernel's cached entry for the directory (S3)
		return stat(m.Path(o.to))
	case "mkdir":
		if err := syscall.Mkdir(p, 0o755); err != nil {
			return result{}, err
		}
		n, err := getdents(p)
		return result{names: n}, err
	case "mkdir-write":
		if err := syscall.Mkdir(m.Path("d"), 0o755); err != nil {
			return result{}, err
		}
		return result{}, writeFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, o.data)
	case "mkdir-rmdir":
		if err := syscall.Mkdir(p, 0o755); err != nil {
			return result{}, err
		}
		if err := syscall.Rmdir(p); err != nil {
			return result{}, err
		}
		return stat(p)
	case "rmdir":
		return result{}, syscall.Rmdir(p)
	case "rename":
		return result{}, syscall.Rename(p, m.Path(o.to))
	case "link":
		return result{}, syscall.Link(p, m.Path(o.to))
	case "symlink":
		return result{}, syscall.Symlink(p, m.Path(o.to))
	case "chmod":
		return result{}, syscall.Chmod(p, 0o600)
	case "chown":
		return result{}, syscall.Chown(p, 1234, 1234)
	case "truncate":
		return result{}, os.Truncate(p, 1)
	case "setxattr":
		return result{}, syscall.Setxattr(p, "user.test", []byte("v"), 0)
	case "utimens":
		now := time.Now()
		return result{}, os.Chtimes(p, now, now)
	}
	panic("unknown op " + o.kind)
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
	return result{kind: k, size: st.Size(), perm: st.Mode().Perm()}, nil
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
		_, err := os.ReadFile(p)
		return result{}, err
	case "write-twice":
		g, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err == nil {
			g.Close()
		}
		return result{}, err
	case "stat-while-writing":
		return stat(p)
	case "unlink-while-writing":
		return result{}, syscall.Unlink(p)
	case "utimens-while-writing":
		now := time.Now()
		return result{}, os.Chtimes(p, now, now)
	}
	panic("unknown op " + o.kind)
}

// checkBucket asserts what the bucket holds at key, waiting a little: a file closed without
// a write is committed at release, which the kernel sends after close(2) returns (S5).
func checkBucket(t *testing.T, m *harness.Mount, key string, want *string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := readKey(m, key)
		switch {
		case want == absent && errors.Is(err, s3.ErrNotFound):
			return
		case want != absent && err == nil && got == *want:
			return
		case time.Now().After(deadline):
			if err != nil {
				t.Fatalf("bucket key %q: %v, want %s", key, err, describe(want))
			}
			t.Fatalf("bucket key %q holds %d bytes %.40q, want %s", key, len(got), got, describe(want))
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
