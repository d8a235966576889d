package streamrule

import (
	"syscall"
	"testing"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/spec/internal/rapidsetup"
)

func TestMain(m *testing.M) { rapidsetup.Main(m, 1000) }

func TestOpeningRules(t *testing.T) {
	file := Target{Exists: true}
	dir := Target{Exists: true, Dir: true}
	writing := Target{Exists: true, BeingWritten: true}
	both := Options{AllowOverwrite: true, AllowDelete: true}
	for _, c := range []struct {
		name string
		got  Verdict
		want syscall.Errno
	}{
		{"create over a file", Create(file), syscall.EEXIST},
		{"create over a directory", Create(dir), syscall.EEXIST},
		{"create of a new name", Create(Target{}), 0},
		{"overwrite without the option", OpenWrite(file, true, Options{}), syscall.EPERM},
		{"overwrite with O_TRUNC", OpenWrite(file, true, both), 0},
		{"edit in place", OpenWrite(file, false, both), syscall.EPERM},
		{"second writer", OpenWrite(writing, true, both), syscall.EPERM},
		{"write open of a directory", OpenWrite(dir, true, both), syscall.EISDIR},
		{"delete without the option", Unlink(file, Options{}), syscall.EPERM},
		{"delete", Unlink(file, both), 0},
		{"delete of a file being written", Unlink(writing, both), syscall.EPERM},
		{"unlink of a directory", Unlink(dir, both), syscall.EISDIR},
		{"unlink of nothing", Unlink(Target{}, both), syscall.ENOENT},
		{"rmdir of a local directory", Rmdir(dir, false, false), 0},
		{"rmdir with entries", Rmdir(dir, true, false), syscall.ENOTEMPTY},
		{"rmdir of a bucket directory", Rmdir(dir, false, true), syscall.EPERM},
		{"rmdir of a file", Rmdir(file, false, false), syscall.ENOTDIR},
		{"rmdir of nothing", Rmdir(Target{}, false, false), syscall.ENOENT},
	} {
		if c.got.Errno != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, c.got.Errno, c.got.Reason, c.want)
		}
		if !c.got.Allowed() && (c.got.Rule == "" || c.got.Reason == "") {
			t.Errorf("%s: a refusal without its rule and reason: %+v", c.name, c.got)
		}
	}
}

// An upload accepts exactly the sequential writes; the first other one fails it for good, and
// only an upload that never failed is committed, once.
func TestUploadIsSequentialAndCommitsOnce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var u Upload
		var accepted int64
		failed, committed := false, false
		for range rapid.IntRange(0, 30).Draw(t, "ops") {
			if rapid.IntRange(0, 5).Draw(t, "op") == 0 {
				next, commit, v := u.Commit()
				u = next
				switch {
				case failed:
					if commit || v.Errno != syscall.EIO {
						t.Fatalf("commit of a failed upload: %v %v", commit, v)
					}
				case commit == committed:
					t.Fatalf("commit %v after committed=%v", commit, committed)
				}
				committed = committed || commit
				continue
			}
			off := accepted
			if rapid.IntRange(0, 4).Draw(t, "out of sequence") == 0 {
				off = rapid.Int64Range(0, 100).Draw(t, "off")
			}
			n := rapid.IntRange(1, 10).Draw(t, "n")
			next, v := u.Write(off, n)
			switch {
			case failed:
				if v.Errno != syscall.EIO {
					t.Fatalf("write after a failure: %v", v)
				}
			case committed:
				if v.Errno != syscall.EPERM {
					t.Fatalf("write after the commit: %v", v)
				}
			case off != accepted:
				if v.Errno != syscall.EINVAL || !next.Failed {
					t.Fatalf("write at %d after %d bytes: %v", off, accepted, v)
				}
				failed = true
			default:
				if !v.Allowed() {
					t.Fatalf("sequential write refused: %v", v)
				}
				accepted += int64(n)
			}
			u = next
			if u.Written != accepted {
				t.Fatalf("written %d, accepted %d", u.Written, accepted)
			}
		}
	})
}

// The opener's close commits what it wrote; closed empty, the commit waits for the last
// close, and is owed at the mount's end only while nothing was written or committed since.
func TestCloseWaitsForTheLastCloseOnlyWhenEmpty(t *testing.T) {
	var u Upload
	u, commit, v := u.Close()
	if commit || !v.Allowed() || !u.OwedAtEnd() {
		t.Fatalf("close of an empty upload: commit %v, %v, owed at end %v; want a wait, owed", commit, v, u.OwedAtEnd())
	}
	if w, _ := u.Write(0, 3); w.OwedAtEnd() {
		t.Fatal("written to after an empty close: still owed at the end, want not (it may not be done)")
	}
	if c, commit, _ := u.Commit(); !commit || c.OwedAtEnd() {
		t.Fatalf("the last close after an empty close: commit %v, owed %v; want committed, not owed", commit, c.OwedAtEnd())
	}
	w, _ := Upload{}.Write(0, 3)
	if _, commit, _ := w.Close(); !commit {
		t.Fatal("the opener's close after writing does not commit")
	}
	failed := Upload{}.Fail()
	if _, commit, v := failed.Close(); commit || v.Errno != syscall.EIO || failed.OwedAtEnd() {
		t.Fatalf("close of a failed upload: commit %v, %v; want EIO", commit, v)
	}
}

func TestSetAttrAndOpenModes(t *testing.T) {
	file := Target{Exists: true}
	writing := Target{Exists: true, BeingWritten: true}
	dir := Target{Exists: true, Dir: true}
	size := func(n int64) *int64 { return &n }
	for _, c := range []struct {
		name string
		got  Verdict
		want syscall.Errno
	}{
		{"chmod", SetAttr(writing, true, false, false, nil, 0), syscall.EPERM},
		{"chown", SetAttr(dir, false, true, false, nil, 0), syscall.EPERM},
		{"truncate of an object", SetAttr(file, false, false, false, size(0), 0), syscall.ENOTSUP},
		{"truncate of a file being written to its size", SetAttr(writing, false, false, false, size(5), 5), 0},
		{"truncate of a file being written elsewhere", SetAttr(writing, false, false, false, size(0), 5), syscall.ENOTSUP},
		{"touch of an object", SetAttr(file, false, false, true, nil, 0), syscall.EPERM},
		{"touch of a file being written", SetAttr(writing, false, false, true, nil, 0), 0},
		{"touch of a directory", SetAttr(dir, false, false, true, nil, 0), 0},
		{"rename", Unsupported("rename"), syscall.ENOTSUP},
	} {
		if c.got.Errno != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, c.got.Errno, c.got.Reason, c.want)
		}
	}
	for _, c := range []struct{ write, read, trunc, want bool }{
		{false, true, false, false}, // O_RDONLY
		{true, false, false, true},  // O_WRONLY
		{true, true, false, false},  // O_RDWR of an existing file: a read handle
		{true, true, true, true},    // O_RDWR|O_TRUNC
	} {
		if got := WriteHandle(c.write, c.read, c.trunc); got != c.want {
			t.Errorf("WriteHandle(write %v, read %v, trunc %v) = %v", c.write, c.read, c.trunc, got)
		}
	}
}
