package conformance

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/spec/posixmeta"
)

// bigNew is larger than the import threshold (128 KiB): its data stays in the bucket until read (Y2).
var bigNew = strings.Repeat("new data ", 20000)

// syncRows are the rows about behaviour only sync mode has: a local file system's semantics
// (Y1-Y11). Each also states what streaming mode gives for the same calls.
func syncRows() []row {
	return []row{
		{rule: "K1", name: "readdir lists . and ..", keys: map[string]string{"a": "1"}, op: op{kind: "readdir-dots", path: ""},
			want: ok(names("a")), sync: ok(names("a"))},
		{rule: "Y4", name: "seek back and rewrite a new file", op: op{kind: "seek-rewrite", path: "f", data: "hello world"},
			want: errno(syscall.EINVAL), sync: ok(result{data: "Jello world", bucket: content("Jello world")})},
		{rule: "Y4", name: "write in place into an imported file", keys: map[string]string{"f": "hello world"},
			op:   op{kind: "inplace-write", path: "f", data: "W", off: 6},
			want: errno(syscall.EBADF), sync: ok(result{data: "hello World", bucket: content("hello World")})},
		{rule: "Y4", name: "truncate down", keys: map[string]string{"f": "0123456789"}, op: op{kind: "truncate-to", path: "f", n: 4},
			want: errno(syscall.ENOTSUP), sync: ok(result{data: "0123", bucket: content("0123")})},
		{rule: "Y4", name: "truncate up fills with zeros", keys: map[string]string{"f": "abc"}, op: op{kind: "truncate-to", path: "f", n: 6},
			want: errno(syscall.ENOTSUP), sync: ok(result{data: "abc\x00\x00\x00", bucket: content("abc\x00\x00\x00")})},
		{rule: "Y4", name: "ftruncate then write at the new end", keys: map[string]string{"f": "0123456789"}, op: op{kind: "ftruncate-write", path: "f", n: 2, data: "ab"},
			want: errno(syscall.ENOTSUP), sync: ok(result{data: "01ab", bucket: content("01ab")})},
		{rule: "Y4", name: "O_APPEND writes at the end even after a seek", keys: map[string]string{"f": "old"}, op: op{kind: "append-twice", path: "f", data: "+"},
			want: errno(syscall.EPERM), sync: ok(result{data: "old++", bucket: content("old++")})},
		{rule: "Y4", name: "write at another offset leaves a hole", op: op{kind: "write-nonseq-read", path: "f"},
			want: errno(syscall.EINVAL), sync: ok(result{data: "abc\x00\x00\x00\x00\x00\x00\x00x", bucket: content("abc\x00\x00\x00\x00\x00\x00\x00x")})},
		{rule: "Y4", name: "a descriptor reads an unlinked file", keys: map[string]string{"f": "still here"}, op: op{kind: "unlink-open-read", path: "f"},
			want: errno(syscall.EPERM), sync: ok(result{data: "still here", bucket: absent})},
		{rule: "Y9", name: "rename over an existing file", op: op{kind: "rename-read", path: "f", to: "g", then: writeFiles(map[string]string{"f": "new", "g": "old"})},
			want: errno(syscall.ENOTSUP), sync: ok(result{data: "new"}).with(map[string]*string{"f": absent, "g": content("new")})},
		{rule: "Y9", name: "rename over an existing file whose data is not local yet", keys: map[string]string{"f": bigNew, "g": "old"},
			op:   op{kind: "rename-read", path: "f", to: "g"},
			want: errno(syscall.ENOTSUP), sync: ok(result{data: bigNew}).with(map[string]*string{"f": absent, "g": content(bigNew)})},
		{rule: "Y9", name: "rename a file into another directory", keys: map[string]string{"f": "moving", "d/x": "1"}, op: op{kind: "rename-read", path: "f", to: "d/f"},
			want: errno(syscall.ENOTSUP), sync: ok(result{data: "moving"}).with(map[string]*string{"f": absent, "d/f": content("moving")})},
		{rule: "Y9", name: "rename a directory with contents", keys: map[string]string{"d/a": "1", "d/sub/b": "2"},
			op:   op{kind: "rename-dir", path: "d", to: "e", after: "e/sub/b"},
			want: errno(syscall.ENOTSUP),
			sync: ok(result{names: names("a", "sub").names, data: "2"}).with(map[string]*string{
				"d/a": absent, "d/sub/b": absent, "e/a": content("1"), "e/sub/b": content("2")})},
		{rule: "Y9", name: "rename a directory over an empty one", keys: map[string]string{"d/a": "1", "e/": ""},
			op:   op{kind: "rename-dir", path: "d", to: "e", after: "e/a"},
			want: errno(syscall.ENOTSUP), sync: ok(result{names: names("a").names, data: "1"}).with(map[string]*string{"d/a": absent, "e/a": content("1")})},
		{rule: "Y9", name: "rename a directory over a non-empty one", keys: map[string]string{"d/a": "1", "e/b": "2"}, op: op{kind: "rename", path: "d", to: "e"},
			want: errno(syscall.ENOTSUP), sync: errno(syscall.ENOTEMPTY)},
		{rule: "Y3", name: "chmod shows in stat", keys: map[string]string{"f": "1"}, op: op{kind: "chmod-stat", path: "f"},
			want: errno(syscall.EPERM), sync: ok(result{kind: "file", size: 1, perm: 0o600})},
		{rule: "Y3", name: "chown shows in stat", keys: map[string]string{"f": "1"}, op: op{kind: "chown-stat", path: "f"},
			want: errno(syscall.EPERM), sync: ok(result{kind: "file", size: 1, perm: 0o644, uid: 1234, gid: 1234})},
		{rule: "Y3", name: "utimens sets the mtime", keys: map[string]string{"f": "1"}, op: op{kind: "utimens-stat", path: "f"},
			want: errno(syscall.EPERM), sync: ok(result{kind: "file", size: 1, perm: 0o644, mtime: 1000000000})},
		{rule: "Y3", name: "chmod, chown and utimens persist through a remount of the sync dir", keys: map[string]string{"f": "1"}, op: op{kind: "attrs-remount", path: "f"},
			want: errno(syscall.EPERM),
			sync: expect{result: result{kind: "file", size: 1, perm: 0o600, uid: 1234, gid: 1234, mtime: 1000000000, bucket: content("1")},
				meta: map[string]string{"mode": "33152", "uid": "1234", "gid": "1234", "mtime": "1000000000"}, stated: true}},
		{rule: "Y3", name: "symlink round trip", op: op{kind: "symlink-readlink", path: "l", data: "some/target"},
			want: errno(syscall.ENOTSUP), sync: ok(result{kind: "symlink", data: "some/target", bucket: content("some/target")})},
		{rule: "Y8", name: "mkdir makes a marker", op: op{kind: "mkdir", path: "d", key: "d/"},
			want: bucket(absent), sync: bucket(content(""))},
		{rule: "Y4", name: "statfs reports the sync dir's disk", op: op{kind: "statfs", path: ""},
			want: notRun("streaming mode has no sync dir"), sync: ok(result{})},
		{rule: "Y3", name: "mkfifo makes an empty object that says FIFO", op: op{kind: "mknod", path: "p"},
			want: errno(syscall.ENOTSUP), sync: expect{result: result{bucket: content("")}, meta: map[string]string{"mode": "4516"}, stated: true}},
		{rule: "Y3", name: "a hard link is the file under another name; each name is an object", keys: map[string]string{"f": "one"},
			op:   op{kind: "link-write", path: "f", to: "g", data: "T"},
			want: errno(syscall.ENOTSUP), sync: ok(result{data: "Tne"}).with(map[string]*string{"f": content("Tne"), "g": content("Tne")})},
		{rule: "Y3", name: "a hard link to a file whose data is not local yet", keys: map[string]string{"f": bigNew},
			op:   op{kind: "link-write", path: "f", to: "g", data: "T"},
			want: errno(syscall.ENOTSUP), sync: ok(result{data: "T" + bigNew[1:]}).with(map[string]*string{"f": content("T" + bigNew[1:]), "g": content("T" + bigNew[1:])})},
		{rule: "Y3", name: "setxattr is kept in the object's metadata", keys: map[string]string{"f": "1"}, op: op{kind: "setxattr-get", path: "f", data: "v"},
			want: errno(syscall.ENOTSUP), sync: expect{result: result{data: "v", bucket: content("1")},
				meta: map[string]string{"xattr": posixmeta.EncodeXattrs(map[string][]byte{"user.test": []byte("v")})}, stated: true}},
		{rule: "Y3", name: "chmod by another user", keys: map[string]string{"f": "1"}, args: []string{"--allow-other"}, op: op{kind: "chmod-as-other", path: "f"},
			want: errno(syscall.EPERM), sync: errno(syscall.EPERM)},
		{rule: "Y3", name: "write by another user without permission", keys: map[string]string{"f": "1"}, args: []string{"--allow-other"}, op: op{kind: "write-as-other", path: "f"},
			want: errno(syscall.EACCES), sync: errno(syscall.EACCES)},
		{rule: "Y3", name: "unlink by another user without write permission on the directory", keys: map[string]string{"f": "1"}, args: []string{"--allow-other"}, op: op{kind: "unlink-as-other", path: "f"},
			want: errno(syscall.EACCES), sync: errno(syscall.EACCES)},
	}
}

// writeFiles returns a row setup that writes files through the mount, so that their data is
// local in sync mode.
func writeFiles(files map[string]string) func(t *testing.T, m *harness.Mount) {
	return func(t *testing.T, m *harness.Mount) {
		for name, data := range files {
			if err := writeFile(m.Path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, data); err != nil {
				t.Fatal(err)
			}
		}
	}
}
