package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// A row of the POSIX table: keys put in the bucket, one operation through the kernel, and
// the result each mode must give. Every row cites the rule it checks, and states its
// expectation in both modes: want for streaming mode (Mountpoint's semantics, S1-S10), sync
// for sync mode (a local file system's semantics over the bucket, Y1-Y11). A row without an
// expectation for a mode fails, so no mode inherits an outcome nobody checked.
type row struct {
	rule   string
	name   string
	prefix string            // mount prefix (K8)
	keys   map[string]string // objects in the bucket before the mount
	args   []string          // more mount flags (both modes)
	op     op
	want   expect // streaming mode
	sync   expect // sync mode (--sync-dir)
	// knownBug names, in one line, the product bug that makes the sync column of this row
	// fail today. The row keeps its correct expectation and still runs: while it fails it is
	// skipped with this note; when it passes (some of these bugs are races) it says so in the
	// log, and the note goes once the bug is fixed.
	knownBug string
}

type op struct {
	kind  string // see apply
	path  string
	to    string // second path (rename, link)
	key   string // the key whose content result.bucket describes, when not the path
	data  string // what write operations write
	after string // a path read after the operation; its content is compared with result.data
	off   int64
	n     int64
	// then runs after the setup and before the operation, for rows about changes made in
	// the bucket behind the mount's back.
	then func(t *testing.T, m *harness.Mount)
}

type result struct {
	errno syscall.Errno
	names []string // readdir: every entry in order, "." and ".." included
	kind  string   // stat: "file", "dir" or "symlink"
	size  int64    // stat
	perm  os.FileMode
	uid   uint32 // stat, compared when the expectation sets it
	gid   uint32
	mtime int64  // stat: seconds, compared when the expectation sets it
	data  string // read, pread, and the ops that read back what they did
	// bucket: what the bucket holds at key op.path after the operation: nil to skip the
	// check, else the content, or absent for no object.
	bucket *string
}

// expect is what a row requires of one mode.
type expect struct {
	result
	objects map[string]*string // more keys the bucket must hold (content) or not hold (absent)
	meta    map[string]string  // user metadata the object at op.key/op.path must carry (Y3)
	same    bool               // sync only: the streaming expectation holds unchanged
	skip    string             // the row does not apply to this mode, and why
	stated  bool
}

var absent = new(string)

func content(s string) *string { return &s }

func ok(r result) expect                  { return expect{result: r, stated: true} }
func errno(e syscall.Errno) expect        { return expect{result: result{errno: e}, stated: true} }
func bucket(c *string) expect             { return expect{result: result{bucket: c}, stated: true} }
func notRun(why string) expect            { return expect{skip: why, stated: true} }
func names(n ...string) result            { return result{names: append([]string{".", ".."}, n...)} }
func objects(o map[string]*string) expect { return expect{objects: o, stated: true} }

// asStreaming states that sync mode gives exactly the streaming outcome: each use was checked
// against a sync mount.
var asStreaming = expect{same: true, stated: true}

// with adds bucket checks to an expectation.
func (e expect) with(o map[string]*string) expect { e.objects = o; return e }

var long255 = strings.Repeat("n", 255)
var long256 = strings.Repeat("n", 256)

func posixTable() []row {
	return []row{
		// K1: keys make files, their prefixes make directories.
		{rule: "K1", name: "prefixes are directories", keys: map[string]string{"a/b/c": "x"}, op: op{kind: "readdir", path: ""}, want: ok(names("a")), sync: asStreaming},
		{rule: "K1", name: "nested directory lists its child", keys: map[string]string{"a/b/c": "x"}, op: op{kind: "readdir", path: "a"}, want: ok(names("b")), sync: asStreaming},
		{rule: "K1", name: "deep key is a file", keys: map[string]string{"a/b/c": "xyz"}, op: op{kind: "stat", path: "a/b/c"}, want: ok(result{kind: "file", size: 3, perm: 0o644}), sync: asStreaming},
		{rule: "K1", name: "implicit directory stats as directory", keys: map[string]string{"a/b/c": "x"}, op: op{kind: "stat", path: "a/b"}, want: ok(result{kind: "dir", perm: 0o755}), sync: asStreaming},
		// K2: markers.
		{rule: "K2", name: "marker makes an empty directory", keys: map[string]string{"d/": ""}, op: op{kind: "readdir", path: "d"}, want: ok(names()), sync: asStreaming},
		{rule: "K2", name: "marker is not listed as a file", keys: map[string]string{"d/": "", "d/f": "1"}, op: op{kind: "readdir", path: "d"}, want: ok(names("f")), sync: asStreaming},
		{rule: "K2", name: "marker with a body is only a directory", keys: map[string]string{"e/": "body"}, op: op{kind: "stat", path: "e"}, want: ok(result{kind: "dir", perm: 0o755}), sync: asStreaming},
		// K3: hidden keys.
		{rule: "K3", name: "dot components are hidden", keys: map[string]string{"x/../y": "1", "x/./y": "2", "./z": "3", "../w": "4", "v/.": "5", "v/..": "6", "ok": "7"},
			op: op{kind: "readdir", path: ""}, want: ok(names("ok", "v", "x")), sync: asStreaming},
		{rule: "K3", name: "directory of hidden keys is empty", keys: map[string]string{"x/../y": "1", "x/./y": "2"}, op: op{kind: "readdir", path: "x"}, want: ok(names()), sync: asStreaming},
		{rule: "K3", name: "empty component is hidden", keys: map[string]string{"a//b": "1", "a/c": "2"}, op: op{kind: "readdir", path: "a"}, want: ok(names("c")), sync: asStreaming},
		{rule: "K3", name: "255-byte name is shown", keys: map[string]string{long255: "1"}, op: op{kind: "readdir", path: ""}, want: ok(names(long255)), sync: asStreaming},
		{rule: "K3", name: "256-byte name is hidden", keys: map[string]string{long256: "1", "b": "2"}, op: op{kind: "readdir", path: ""}, want: ok(names("b")), sync: asStreaming},
		{rule: "K3", name: "256-byte name cannot be looked up", keys: map[string]string{long256: "1"}, op: op{kind: "stat", path: long256}, want: errno(syscall.ENAMETOOLONG), sync: asStreaming},
		{rule: "K3", name: "trailing /. key does not make a file", keys: map[string]string{"t/.": "1"}, op: op{kind: "stat", path: "t"}, want: ok(result{kind: "dir", perm: 0o755}), sync: asStreaming},
		// K4: shadowing.
		{rule: "K4", name: "directory shadows file", keys: map[string]string{"a": "file", "a/x": "1"}, op: op{kind: "stat", path: "a"}, want: ok(result{kind: "dir", perm: 0o755}), sync: asStreaming},
		{rule: "K4", name: "a/a and a/a/ together", keys: map[string]string{"a/a": "file", "a/a/": ""}, op: op{kind: "stat", path: "a/a"}, want: ok(result{kind: "dir", perm: 0o755}), sync: asStreaming},
		{rule: "K4", name: "a/a and a/a/ listed once", keys: map[string]string{"a/a": "file", "a/a/": ""}, op: op{kind: "readdir", path: "a"}, want: ok(names("a")), sync: asStreaming},
		{rule: "K4", name: "file reappears when directory goes", keys: map[string]string{"a": "file", "a/x": "1"},
			op: op{kind: "stat", path: "a", then: func(t *testing.T, m *harness.Mount) {
				if _, err := os.Stat(m.Path("a")); err != nil {
					t.Fatal(err)
				}
				m.Delete(t, "a/x")
				time.Sleep(1100 * time.Millisecond) // the minimal metadata TTL (S3)
			}}, want: ok(result{kind: "file", size: 4, perm: 0o644}), sync: ok(result{kind: "dir", perm: 0o755}) /* the imported directory stays until a poll sees the delete (C2) */},
		// K5: names are bytes.
		{rule: "K5", name: "backslash, space and unicode names as stored", keys: map[string]string{`b\s`: "1", "with space": "2", "ünï": "3", "Z": "4"},
			op: op{kind: "readdir", path: ""}, want: ok(names("Z", `b\s`, "with space", "ünï")), sync: asStreaming},
		// K6: order and uniqueness.
		{rule: "K6", name: "-a- before -a/ in S3, but names in byte order", keys: map[string]string{"-a-": "1", "-a/x": "2"}, op: op{kind: "readdir", path: ""}, want: ok(names("-a", "-a-")), sync: asStreaming},
		{rule: "K6", name: "file and directory of one name listed once", keys: map[string]string{"a": "1", "a/x": "2", "b": "3"}, op: op{kind: "readdir", path: ""}, want: ok(names("a", "b")), sync: asStreaming},
		{rule: "K6", name: "directory of several listing pages", keys: bigDir(), op: op{kind: "readdir", path: "big"}, want: ok(bigDirNames()), sync: asStreaming},
		// K7: a path maps to one key.
		{rule: "K7", name: "odd bytes map to the key", keys: map[string]string{"p q/r+s%t&u": "content"}, op: op{kind: "read", path: "p q/r+s%t&u"}, want: ok(result{data: "content"}), sync: asStreaming},
		// K8: the prefix is the root.
		{rule: "K8", name: "only the prefix is shown", prefix: "pre/", keys: map[string]string{"pre/a": "1", "pre": "2", "pref/c": "3", "other/b": "4"}, op: op{kind: "readdir", path: ""}, want: ok(names("a")), sync: asStreaming},
		{rule: "K8", name: "outside the prefix is not found", prefix: "pre/", keys: map[string]string{"pre/a": "1", "other": "4"}, op: op{kind: "stat", path: "other"}, want: errno(syscall.ENOENT), sync: asStreaming},
		{rule: "K8", name: "file below the prefix reads", prefix: "pre/sub/", keys: map[string]string{"pre/sub/f": "deep"}, op: op{kind: "read", path: "f"}, want: ok(result{data: "deep"}), sync: asStreaming},
		// S1: reads.
		{rule: "S1", name: "read whole file", keys: map[string]string{"f": "hello world"}, op: op{kind: "read", path: "f"}, want: ok(result{data: "hello world"}), sync: asStreaming},
		{rule: "S1", name: "read in the middle", keys: map[string]string{"f": "hello world"}, op: op{kind: "pread", path: "f", off: 6, n: 3}, want: ok(result{data: "wor"}), sync: asStreaming},
		{rule: "S1", name: "read the last byte", keys: map[string]string{"f": "hello world"}, op: op{kind: "pread", path: "f", off: 10, n: 5}, want: ok(result{data: "d"}), sync: asStreaming},
		{rule: "S1", name: "read past the end", keys: map[string]string{"f": "hello"}, op: op{kind: "pread", path: "f", off: 100, n: 5}, want: ok(result{data: ""}), sync: asStreaming},
		{rule: "S1", name: "read an empty object", keys: map[string]string{"empty": ""}, op: op{kind: "read", path: "empty"}, want: ok(result{data: ""}), sync: asStreaming},
		{rule: "S1", name: "missing file", keys: map[string]string{"f": "1"}, op: op{kind: "read", path: "nope"}, want: errno(syscall.ENOENT), sync: asStreaming},
		// S3: metadata TTL; listings are never stale.
		{rule: "S3", name: "listing shows a key added behind the mount", keys: map[string]string{"a": "1"},
			op: op{kind: "readdir", path: "", then: func(t *testing.T, m *harness.Mount) {
				if _, err := getdents(m.Dir); err != nil {
					t.Fatal(err)
				}
				m.Put(t, "b", []byte("2"))
			}}, want: ok(names("a", "b")), sync: ok(names("a")) /* listings are local after the first access (Y1); remote changes arrive by polling (C2) */},
		{rule: "S3", name: "size changes after the TTL", keys: map[string]string{"f": "short"},
			op: op{kind: "stat", path: "f", then: func(t *testing.T, m *harness.Mount) {
				if _, err := os.Stat(m.Path("f")); err != nil {
					t.Fatal(err)
				}
				m.Put(t, "f", []byte("a longer body"))
				time.Sleep(1100 * time.Millisecond)
			}}, want: ok(result{kind: "file", size: 13, perm: 0o644}), sync: ok(result{kind: "file", size: 5, perm: 0o644}) /* Y1, C2 */},
		{rule: "S3", name: "deleted behind the mount is gone after the TTL", keys: map[string]string{"f": "x"},
			op: op{kind: "stat", path: "f", then: func(t *testing.T, m *harness.Mount) {
				if _, err := os.Stat(m.Path("f")); err != nil {
					t.Fatal(err)
				}
				m.Delete(t, "f")
				time.Sleep(1100 * time.Millisecond)
			}}, want: errno(syscall.ENOENT), sync: ok(result{kind: "file", size: 1, perm: 0o644}) /* Y1, C2 */},
		// S9: attributes.
		{rule: "S9", name: "file mode and size", keys: map[string]string{"f": "12345"}, op: op{kind: "stat", path: "f"}, want: ok(result{kind: "file", size: 5, perm: 0o644}), sync: asStreaming},
		{rule: "S9", name: "root is a 0755 directory", keys: map[string]string{}, op: op{kind: "stat", path: ""}, want: ok(result{kind: "dir", perm: 0o755}), sync: asStreaming},
		{rule: "S10", name: "directory cannot be opened for writing", keys: map[string]string{"d/x": "1"}, op: op{kind: "open-write", path: "d"}, want: errno(syscall.EISDIR), sync: asStreaming},
		{rule: "S10", name: "O_RDWR on an existing object is a read handle", keys: map[string]string{"f": "abc"}, op: op{kind: "rdwr-read", path: "f"}, want: ok(result{data: "abc"}), sync: asStreaming},
		// S2: a file being written.
		{rule: "S2", name: "reading a file being written", op: op{kind: "read-while-writing", path: "f", data: "live"}, want: errno(syscall.EPERM), sync: ok(result{data: "live"})},
		{rule: "S2", name: "second writer", op: op{kind: "write-twice", path: "f"}, want: errno(syscall.EPERM), sync: ok(result{})},
		{rule: "S2", name: "stat of a file being written shows its size", op: op{kind: "stat-while-writing", path: "f", data: "12345"}, want: ok(result{kind: "file", size: 5, perm: 0o644}), sync: asStreaming},
		// S4: sequential writes, visible at close or fsync.
		{rule: "S4", name: "new file becomes an object", op: op{kind: "write", path: "new", data: "fresh"}, want: bucket(content("fresh")), sync: asStreaming},
		{rule: "S4", name: "multipart-sized file", op: op{kind: "write", path: "big", data: strings.Repeat("0123456789abcdef", 1<<20+7)}, args: []string{"--write-part-size", "5242880"}, want: bucket(content(strings.Repeat("0123456789abcdef", 1<<20+7))), sync: asStreaming},
		{rule: "S4", name: "write at another offset", op: op{kind: "write-nonseq", path: "f"}, want: errno(syscall.EINVAL), sync: ok(result{})},
		{rule: "S4", name: "nothing left after a non-sequential write", op: op{kind: "write-nonseq-close", path: "f"}, want: bucket(absent), sync: bucket(content("abc\x00\x00\x00\x00\x00\x00\x00x"))},
		{rule: "S4", name: "fsync commits; later writes fail", op: op{kind: "fsync-then-write", path: "f", data: "abc"}, want: errno(syscall.EPERM), sync: bucket(content("abcmore"))},
		{rule: "S4", name: "object exists after fsync", op: op{kind: "fsync-then-check", path: "f", data: "abc"}, want: bucket(content("abc")), sync: asStreaming},
		{rule: "S4", name: "shell redirection writes", op: op{kind: "shell-write", path: "f", data: "from the shell"}, want: bucket(content("from the shell\n")), sync: asStreaming},
		// S5: empty files.
		{rule: "S5", name: "created and closed empty file is an empty object", op: op{kind: "write", path: "e", data: ""}, want: bucket(content("")), sync: asStreaming},
		{rule: "S5", name: "touch creates an empty object", op: op{kind: "touch", path: "t"}, want: bucket(content("")), sync: asStreaming},
		// S6: overwrite and delete.
		{rule: "S6", name: "overwrite needs --allow-overwrite", keys: map[string]string{"f": "old"}, op: op{kind: "overwrite", path: "f", data: "new"}, want: errno(syscall.EPERM), sync: bucket(content("new"))},
		{rule: "S6", name: "overwrite with O_TRUNC", keys: map[string]string{"f": "old"}, args: []string{"--allow-overwrite"}, op: op{kind: "overwrite", path: "f", data: "new"}, want: bucket(content("new")), sync: asStreaming},
		{rule: "S6", name: "open for write without O_TRUNC", keys: map[string]string{"f": "old"}, args: []string{"--allow-overwrite"}, op: op{kind: "open-write", path: "f"}, want: errno(syscall.EPERM), sync: bucket(content("old"))},
		{rule: "S6", name: "append to an existing object", keys: map[string]string{"f": "old"}, args: []string{"--allow-overwrite"}, op: op{kind: "append", path: "f", data: "more"}, want: errno(syscall.EPERM), sync: bucket(content("oldmore"))},
		{rule: "S6", name: "create an existing name", keys: map[string]string{"f": "old"}, op: op{kind: "create-excl", path: "f"}, want: errno(syscall.EEXIST), sync: asStreaming},
		{rule: "S6", name: "create over a directory", keys: map[string]string{"d/x": "1"}, op: op{kind: "create-excl", path: "d"}, want: errno(syscall.EEXIST), sync: asStreaming},
		{rule: "S6", name: "delete needs --allow-delete", keys: map[string]string{"f": "x"}, op: op{kind: "unlink", path: "f"}, want: errno(syscall.EPERM), sync: bucket(absent)},
		{rule: "S6", name: "unlink deletes the object", keys: map[string]string{"f": "x"}, args: []string{"--allow-delete"}, op: op{kind: "unlink", path: "f"}, want: bucket(absent), sync: asStreaming},
		{rule: "S6", name: "unlink a directory", keys: map[string]string{"d/x": "1"}, args: []string{"--allow-delete"}, op: op{kind: "unlink", path: "d"}, want: errno(syscall.EISDIR), sync: asStreaming},
		{rule: "S6", name: "unlink a file being written", args: []string{"--allow-delete"}, op: op{kind: "unlink-while-writing", path: "f"}, want: errno(syscall.EPERM), sync: bucket(absent)},
		{rule: "S6", name: "unlink a missing file", args: []string{"--allow-delete"}, op: op{kind: "unlink", path: "nope"}, want: errno(syscall.ENOENT), sync: asStreaming},
		{rule: "S4", name: "shadowed file reappears after delete", keys: map[string]string{"a": "file", "a/x": "1"}, args: []string{"--allow-delete"}, op: op{kind: "unlink-then-stat", path: "a/x", to: "a"}, want: ok(result{kind: "file", size: 4, perm: 0o644}), sync: ok(result{kind: "dir", perm: 0o755}) /* a local directory stays when emptied */},
		// S7: local directories.
		{rule: "S7", name: "mkdir makes a local directory", op: op{kind: "mkdir", path: "d"}, want: ok(names()), sync: asStreaming},
		{rule: "S7", name: "mkdir writes nothing to the bucket", op: op{kind: "mkdir", path: "d", key: "d/"}, want: bucket(absent), sync: bucket(content("")) /* Y8: a marker */},
		{rule: "S7", name: "mkdir of an existing directory", keys: map[string]string{"d/x": "1"}, op: op{kind: "mkdir", path: "d"}, want: errno(syscall.EEXIST), sync: asStreaming},
		{rule: "S7", name: "file written in a new directory", op: op{kind: "mkdir-write", path: "d/f", data: "in dir"}, want: bucket(content("in dir")), sync: asStreaming},
		{rule: "S7", name: "rmdir of an empty local directory", op: op{kind: "mkdir-rmdir", path: "d"}, want: errno(syscall.ENOENT), sync: asStreaming},
		{rule: "S7", name: "rmdir of a directory with entries", keys: map[string]string{"d/x": "1"}, op: op{kind: "rmdir", path: "d"}, want: errno(syscall.ENOTEMPTY), sync: asStreaming},
		{rule: "S7", name: "rmdir of a directory marker in the bucket", keys: map[string]string{"d/": ""}, op: op{kind: "rmdir", path: "d", key: "d/"}, want: errno(syscall.EPERM), sync: bucket(absent) /* Y8 */},
		{rule: "S7", name: "rmdir of a file", keys: map[string]string{"f": "1"}, op: op{kind: "rmdir", path: "f"}, want: errno(syscall.ENOTDIR), sync: asStreaming},
		// S8: not supported.
		{rule: "S8", name: "rename", keys: map[string]string{"f": "1"}, op: op{kind: "rename", path: "f", to: "g"}, want: errno(syscall.ENOTSUP), sync: objects(map[string]*string{"f": absent, "g": content("1")})},
		{rule: "S8", name: "hard link", keys: map[string]string{"f": "1"}, op: op{kind: "link", path: "f", to: "g"}, want: errno(syscall.ENOTSUP), sync: objects(map[string]*string{"f": content("1"), "g": content("1")})},
		{rule: "S8", name: "symbolic link", keys: map[string]string{"f": "1"}, op: op{kind: "symlink", path: "f", to: "g"}, want: errno(syscall.ENOTSUP), sync: ok(result{})},
		{rule: "S8", name: "chmod", keys: map[string]string{"f": "1"}, op: op{kind: "chmod", path: "f"}, want: errno(syscall.EPERM), sync: ok(result{})},
		{rule: "S8", name: "chown", keys: map[string]string{"f": "1"}, op: op{kind: "chown", path: "f"}, want: errno(syscall.EPERM), sync: ok(result{})},
		{rule: "S8", name: "truncate", keys: map[string]string{"f": "123"}, op: op{kind: "truncate", path: "f"}, want: errno(syscall.ENOTSUP), sync: bucket(content("1"))},
		{rule: "S8", name: "set an xattr", keys: map[string]string{"f": "1"}, op: op{kind: "setxattr", path: "f"}, want: errno(syscall.ENOTSUP),
			sync: expect{result: result{bucket: content("1")}, meta: map[string]string{"xattr": "%7B%22user.test%22%3A%22dg%3D%3D%22%7D"}, stated: true}},
		{rule: "S8", name: "utimens of a committed file", keys: map[string]string{"f": "1"}, op: op{kind: "utimens", path: "f"}, want: errno(syscall.EPERM), sync: ok(result{})},
		{rule: "S8", name: "utimens of a file being written", op: op{kind: "utimens-while-writing", path: "f"}, want: ok(result{}), sync: asStreaming},
		{rule: "S3", name: "read-only mount refuses writes", args: []string{"--read-only"}, op: op{kind: "write", path: "f", data: "x"}, want: errno(syscall.EROFS), sync: asStreaming},
	}
}

func bigDir() map[string]string {
	keys := map[string]string{"big/-a-": "x", "big/-a/x": "y"}
	for i := 0; i < 1100; i++ {
		keys[fmt.Sprintf("big/f%04d", i)] = ""
	}
	return keys
}

func bigDirNames() result {
	n := []string{"-a", "-a-"}
	for i := 0; i < 1100; i++ {
		n = append(n, fmt.Sprintf("f%04d", i))
	}
	return names(n...)
}

func TestPOSIXTable(t *testing.T) { runTable(t, "streaming") }

// TestPOSIXTableSync runs every row on a sync mount: its own server and sync dir per row, as
// the streaming column has its own server per row, with a write-back window of an hour so
// that the bucket changes only when a row flushes (`mount-s3 sync --flush`) to check it.
func TestPOSIXTableSync(t *testing.T) { runTable(t, "sync") }

func runTable(t *testing.T, mode string) {
	rows := append(posixTable(), syncRows()...)
	for _, r := range rows {
		t.Run(r.rule+"/"+r.name, func(t *testing.T) {
			t.Parallel()
			want := r.want
			if mode == "sync" {
				if r.sync.same {
					want = r.want
				} else {
					want = r.sync
				}
			}
			if !r.want.stated || (mode == "sync" && !r.sync.stated) {
				t.Fatalf("the row states no expectation for %s mode", mode)
			}
			if want.skip != "" {
				t.Skip(want.skip)
			}
			err := runRow(t, mode, r, want)
			switch {
			case mode != "sync" || r.knownBug == "":
				if err != nil {
					t.Fatal(err)
				}
			case err != nil:
				t.Skipf("known bug: %s: %v", r.knownBug, err)
			default:
				// Some of these bugs are races and may not show on a run.
				t.Logf("the known bug %q did not show: once it is fixed, remove the note", r.knownBug)
			}
		})
	}
}

// runRow mounts for the row in mode, applies its operation and returns how the outcome
// differs from want.
func runRow(t *testing.T, mode string, r row, want expect) error {
	keys := make([]string, 0, len(r.keys))
	for k := range r.keys {
		keys = append(keys, k)
	}
	harness.SkipUnstorableKeys(t, keys)
	srv, store := harness.NewServer(t)
	for k, v := range r.keys {
		if _, err := store.Put(context.Background(), k, bytes.NewReader([]byte(v)), int64(len(v)), s3.WriteOptions{}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	e := &env{t: t, mode: mode, opts: harness.Options{Prefix: r.prefix, Args: r.args}, srv: srv, store: store}
	if mode == "sync" {
		e.syncDir = t.TempDir()
		e.opts.Args = append([]string{"--sync-dir", e.syncDir, "--write-back-delay", "1h"}, r.args...)
	}
	e.m = harness.MountServer(t, srv, store, e.opts)
	if r.op.then != nil {
		r.op.then(t, e.m)
	}
	got, err := apply(e, r.op)
	if en := errnoOf(err); en != want.errno {
		return fmt.Errorf("%s %q: errno %v (%v), want %v", r.op.kind, r.op.path, en, err, want.errno)
	}
	if want.errno != 0 {
		return nil
	}
	if err := check(r.op, got, want.result); err != nil {
		return err
	}
	return checkObjects(e, r.op, want)
}

// env is a row's mount and what it takes to mount it again.
type env struct {
	t       *testing.T
	mode    string
	m       *harness.Mount
	opts    harness.Options
	srv     harness.Endpoint
	store   s3.Store
	syncDir string // sync mode
}

// remount unmounts and mounts the same bucket again with the same flags: in sync mode, on
// the same sync dir.
func (e *env) remount() {
	e.m.Unmount(e.t)
	e.m = harness.MountServer(e.t, e.srv, e.store, e.opts)
}

// checkObjects checks the bucket after the operation. In sync mode the mount first writes
// back everything (Y5 with the window cut short by a flush).
func checkObjects(e *env, o op, want expect) error {
	if want.bucket == nil && want.objects == nil && want.meta == nil {
		return nil
	}
	if e.mode == "sync" {
		out, err := harness.Flush(e.t, e.m.Dir)
		if err != nil {
			return fmt.Errorf("mount-s3 sync --flush: %v: %s", err, out)
		}
	}
	key := o.path
	if o.key != "" {
		key = o.key
	}
	all := map[string]*string{}
	for k, c := range want.objects {
		all[k] = c
	}
	if want.bucket != nil {
		all[key] = want.bucket
	}
	for k, c := range all {
		if err := bucketHolds(e.m, k, c); err != nil {
			return err
		}
	}
	if want.meta != nil {
		info, err := e.store.Head(context.Background(), key)
		if err != nil {
			return fmt.Errorf("head %q: %v", key, err)
		}
		for k, v := range want.meta {
			if info.Metadata[k] != v {
				return fmt.Errorf("object %q: metadata %s=%q, want %q (all: %v)", key, k, info.Metadata[k], v, info.Metadata)
			}
		}
	}
	return nil
}

func check(o op, got, want result) error {
	switch o.kind {
	case "readdir", "readdir-dots", "rename-dir", "mkdir":
		if (o.kind != "mkdir" || want.names != nil) && !slices.Equal(got.names, want.names) {
			return fmt.Errorf("%s %q:\n got %q\nwant %q", o.kind, o.path, abbreviate(got.names), abbreviate(want.names))
		}
	case "stat", "stat-while-writing", "unlink-then-stat", "chmod-stat", "chown-stat", "attrs-remount", "utimens-stat", "mkdir-rmdir":
		if got.kind != want.kind || (want.kind == "file" && got.size != want.size) || got.perm != want.perm ||
			(want.uid != 0 && (got.uid != want.uid || got.gid != want.gid)) || (want.mtime != 0 && got.mtime != want.mtime) {
			return fmt.Errorf("%s %q: got %+v, want %+v", o.kind, o.path, got, want)
		}
	}
	if readsBack[o.kind] || o.after != "" {
		if !bytes.Equal([]byte(got.data), []byte(want.data)) {
			return fmt.Errorf("%s %q: read %q, want %q", o.kind, o.path, got.data, want.data)
		}
	}
	if o.kind == "symlink-readlink" && got.kind != want.kind {
		return fmt.Errorf("lstat %q: %s, want %s", o.path, got.kind, want.kind)
	}
	return nil
}

// readsBack are the operations whose result.data is compared.
var readsBack = map[string]bool{"read": true, "pread": true, "rdwr-read": true, "read-while-writing": true,
	"seek-rewrite": true, "inplace-write": true, "truncate-to": true, "append-twice": true, "rename-read": true,
	"unlink-open-read": true, "symlink-readlink": true, "write-nonseq-read": true}

func abbreviate(n []string) []string {
	if len(n) > 12 {
		return append(append(slices.Clone(n[:6]), "..."), n[len(n)-4:]...)
	}
	return n
}
