package conformance

import (
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// Hard links in sync mode: one inode with several names, as on a local disk; in the bucket,
// where there are no links, each name is its own object with the same bytes and metadata
// (issue 17, docs/SYNC-MODE.md).
func TestSyncHardLinks(t *testing.T) {
	srv, store := harness.NewServer(t)
	syncDir := t.TempDir()
	m := syncMount(t, srv, store, syncDir)
	ctx := context.Background()

	require.NoError(t, os.WriteFile(m.Path("f"), []byte("one"), 0o644))
	require.NoError(t, os.Mkdir(m.Path("d"), 0o755))
	require.NoError(t, os.Link(m.Path("f"), m.Path("d/g")))
	require.ErrorIs(t, os.Link(m.Path("f"), m.Path("d/g")), syscall.EEXIST)
	require.ErrorIs(t, os.Link(m.Path("d"), m.Path("d2")), syscall.EPERM)
	fst, gst := lstat(t, m.Path("f")), lstat(t, m.Path("d/g"))
	require.Equal(t, fst.Ino, gst.Ino, "one inode")
	require.EqualValues(t, 2, fst.Nlink)
	require.EqualValues(t, 2, gst.Nlink)

	// A write through one name, by a descriptor opened before the link or after, is the
	// file's; so are its attributes.
	fd, err := os.OpenFile(m.Path("d/g"), os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fd.WriteAt([]byte("TWO"), 0)
	require.NoError(t, err)
	require.NoError(t, fd.Close())
	b, err := os.ReadFile(m.Path("f"))
	require.NoError(t, err)
	require.Equal(t, "TWO", string(b))
	require.NoError(t, os.Chmod(m.Path("f"), 0o600))
	require.EqualValues(t, 0o600, lstat(t, m.Path("d/g")).Mode&0o7777)

	// The bucket: each name an object with the file's bytes and mode.
	flush(t, m)
	for _, key := range []string{"f", "d/g"} {
		body, info, err := store.Get(ctx, key, 0, -1, "")
		require.NoError(t, err, key)
		got, _ := io.ReadAll(body)
		body.Close()
		require.Equal(t, "TWO", string(got), key)
		require.Equal(t, "33152", info.Metadata["mode"], key) // 0100600
	}

	// Links survive a remount of the same sync dir.
	m.Unmount(t)
	m = syncMount(t, srv, store, syncDir)
	fst, gst = lstat(t, m.Path("f")), lstat(t, m.Path("d/g"))
	require.Equal(t, fst.Ino, gst.Ino)
	require.EqualValues(t, 2, fst.Nlink)

	// unlink removes one name; the file lives on under the other.
	require.NoError(t, os.Remove(m.Path("f")))
	gst = lstat(t, m.Path("d/g"))
	require.EqualValues(t, 1, gst.Nlink)
	b, err = os.ReadFile(m.Path("d/g"))
	require.NoError(t, err)
	require.Equal(t, "TWO", string(b))

	// rename between two names of one file does nothing; rename over one name leaves the other.
	require.NoError(t, os.Link(m.Path("d/g"), m.Path("h")))
	require.NoError(t, os.Rename(m.Path("h"), m.Path("d/g")))
	require.EqualValues(t, 2, lstat(t, m.Path("h")).Nlink)
	require.NoError(t, os.WriteFile(m.Path("x"), []byte("other"), 0o644))
	require.NoError(t, os.Rename(m.Path("x"), m.Path("h")))
	require.EqualValues(t, 1, lstat(t, m.Path("d/g")).Nlink)
	b, err = os.ReadFile(m.Path("h"))
	require.NoError(t, err)
	require.Equal(t, "other", string(b))

	// Symlinks and FIFOs link too.
	require.NoError(t, os.Symlink("target", m.Path("s")))
	require.NoError(t, unix.Mkfifo(m.Path("p"), 0o644))
	for _, n := range []string{"s", "p"} {
		require.NoError(t, unix.Linkat(unix.AT_FDCWD, m.Path(n), unix.AT_FDCWD, m.Path(n+"2"), 0), n)
		require.Equal(t, lstat(t, m.Path(n)).Ino, lstat(t, m.Path(n+"2")).Ino, n)
		require.EqualValues(t, 2, lstat(t, m.Path(n+"2")).Nlink, n)
	}
	flush(t, m)
	_, err = store.Head(ctx, "f")
	require.Error(t, err, "the unlinked name's object is deleted")

	// A fresh sync dir over the bucket sees separate files with the same bytes.
	m.Unmount(t)
	other := syncMount(t, srv, store, t.TempDir())
	b, err = os.ReadFile(other.Path("d/g"))
	require.NoError(t, err)
	require.Equal(t, "TWO", string(b))
	require.EqualValues(t, 1, lstat(t, other.Path("d/g")).Nlink)
	target, err := os.Readlink(other.Path("s2"))
	require.NoError(t, err)
	require.Equal(t, "target", target)
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(p, &st), p)
	return st
}

// A remote change to one name of a linked file (C2, C4): the bucket's version takes that name,
// which leaves the link; the other name keeps the file and its bytes.
func TestSyncHardLinkRemoteChange(t *testing.T) {
	srv, store := harness.NewServer(t)
	ctx := context.Background()
	m := syncMount(t, srv, store, t.TempDir(), "--poll-interval", "1s")
	require.NoError(t, os.WriteFile(m.Path("a"), []byte("linked"), 0o644))
	require.NoError(t, os.Link(m.Path("a"), m.Path("b")))
	flush(t, m)

	_, err := store.Put(ctx, "b", strings.NewReader("theirs, longer"), 14, s3.WriteOptions{})
	require.NoError(t, err)
	eventually(t, 6*time.Second, "a remote change to one name of a linked file", func() bool {
		return readString(m.Path("b")) == "theirs, longer"
	})
	require.Equal(t, "linked", readString(m.Path("a")))
	eventually(t, 3*time.Second, "the names are two files", func() bool {
		var a, b unix.Stat_t
		return unix.Lstat(m.Path("a"), &a) == nil && unix.Lstat(m.Path("b"), &b) == nil &&
			a.Nlink == 1 && b.Nlink == 1 && a.Ino != b.Ino
	})
	// A write to the name left behind is its own.
	require.NoError(t, os.WriteFile(m.Path("a"), []byte("mine"), 0o644))
	require.Equal(t, "theirs, longer", readString(m.Path("b")))
	flush(t, m)
	body, _, err := store.Get(ctx, "a", 0, -1, "")
	require.NoError(t, err)
	got, _ := io.ReadAll(body)
	body.Close()
	require.Equal(t, "mine", string(got))
}

// A conflict moves the local version to lost+found with its data id, without being a link:
// to the kernel it is another file, whatever the mount still knows of the original's inode.
// Found by the remote-writer model test: the lost+found file took the original's inode, so
// its getxattr of the original path answered ENODATA.
func TestSyncLostFoundFileIsNotTheOriginalsInode(t *testing.T) {
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, t.TempDir())
	require.NoError(t, os.WriteFile(m.Path("a"), []byte("base"), 0o644))
	flush(t, m)
	before := lstat(t, m.Path("a")) // the mount knows a's inode, with its data id
	// Their version is over the import threshold, so the original's record stays without
	// local data (and without a data id) until read.
	m.Put(t, "a", []byte(bigNew))
	require.NoError(t, os.WriteFile(m.Path("a"), []byte("my edit"), 0o644))
	flush(t, m)
	lf := lostFile(t, m, "a")
	require.NotEqual(t, before.Ino, lstat(t, lf).Ino)
	require.EqualValues(t, 1, lstat(t, lf).Nlink)
	b, err := os.ReadFile(lf)
	require.NoError(t, err)
	require.Equal(t, "my edit", string(b))
	eventuallyReads(t, m.Path("a"), bigNew)
}

// The same when the name that leaves is the one the inode was first known by: the name left
// behind still reaches the file, for reads and for writes, and never the other one (found in
// review: the inode kept using the departed name).
func TestSyncHardLinkRemoteChangeOfFirstName(t *testing.T) {
	srv, store := harness.NewServer(t)
	ctx := context.Background()
	m := syncMount(t, srv, store, t.TempDir(), "--poll-interval", "1s")
	require.NoError(t, os.WriteFile(m.Path("x"), []byte("linked"), 0o644))
	require.NoError(t, os.Link(m.Path("x"), m.Path("y")))
	flush(t, m)
	require.Equal(t, lstat(t, m.Path("x")).Ino, lstat(t, m.Path("y")).Ino)

	_, err := store.Put(ctx, "x", strings.NewReader("theirs, longer"), 14, s3.WriteOptions{})
	require.NoError(t, err)
	eventually(t, 6*time.Second, "the remote change to the first name", func() bool {
		return readString(m.Path("x")) == "theirs, longer"
	})
	require.Equal(t, "linked", readString(m.Path("y")))
	f, err := os.OpenFile(m.Path("y"), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte(" and mine"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, "linked and mine", readString(m.Path("y")))
	require.Equal(t, "theirs, longer", readString(m.Path("x")))
	flush(t, m)
	for key, want := range map[string]string{"x": "theirs, longer", "y": "linked and mine"} {
		body, _, err := store.Get(ctx, key, 0, -1, "")
		require.NoError(t, err)
		got, _ := io.ReadAll(body)
		body.Close()
		require.Equal(t, want, string(got), key)
	}
}
