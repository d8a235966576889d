package syncfs

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

type notifyCount struct{ n int }

func (c *notifyCount) Notify() { c.n++ }

func (c *notifyCount) Flush(context.Context) error { return nil }

func newFS(t *testing.T) (*FS, *local.Layer, *notifyCount) {
	t.Helper()
	l, err := local.Open(t.TempDir(), local.Options{Bucket: "b"})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	wb := &notifyCount{}
	f, err := New(Config{Layer: l, WriteBack: wb})
	require.NoError(t, err)
	t.Cleanup(func() {
		if !t.Failed() {
			require.NoError(t, f.CheckInvariants(), "the inode and handle tables at the end of the test")
		}
	})
	return f, l, wb
}

var me = vfs.Caller{Pid: 1, UID: 1000, GID: 100}

func create(t *testing.T, f *FS, parent vfs.InodeID, name string) (vfs.Entry, vfs.HandleID) {
	t.Helper()
	e, h, err := f.Create(context.Background(), parent, name, 0o640, me)
	require.NoError(t, err)
	return e, h
}

func readAll(t *testing.T, f *FS, id vfs.InodeID) string {
	t.Helper()
	ctx := context.Background()
	h, err := f.Open(ctx, id, vfs.OpenFlags{Read: true}, vfs.PID(1))
	require.NoError(t, err)
	defer f.Release(h)
	buf := make([]byte, 1<<16)
	n, err := f.Read(ctx, h, 0, buf)
	require.NoError(t, err)
	return string(buf[:n])
}

func TestWriteAnywhereTruncateAndReadBack(t *testing.T) {
	f, l, wb := newFS(t)
	ctx := context.Background()
	e, h := create(t, f, vfs.RootID, "a.txt")
	require.Equal(t, os.FileMode(0o640), e.Attr.Mode)
	require.Equal(t, uint32(1000), e.Attr.UID)
	require.NoError(t, f.Write(ctx, h, 0, []byte("hello world")))
	require.NoError(t, f.Write(ctx, h, 0, []byte("HELLO"))) // seek-back rewrite
	require.NoError(t, f.Write(ctx, h, 20, []byte("!")))    // a hole
	require.NoError(t, f.Flush(ctx, h, vfs.PID(1)))
	f.Release(h)
	require.Equal(t, "HELLO world\x00\x00\x00\x00\x00\x00\x00\x00\x00!", readAll(t, f, e.Attr.Inode))

	size := uint64(5)
	at, _, err := f.SetAttr(ctx, e.Attr.Inode, vfs.SetAttrRequest{Size: &size})
	require.NoError(t, err)
	require.Equal(t, uint64(5), at.Size)
	require.Equal(t, "HELLO", readAll(t, f, e.Attr.Inode))

	info, err := l.Stat("a.txt")
	require.NoError(t, err)
	require.True(t, info.State.Dirty(), "a changed file is dirty until the bucket has it")
	require.Positive(t, wb.n, "the write-back engine is told of changes")
}

func TestRenameKeepsInodesAndOpenHandles(t *testing.T) {
	f, _, _ := newFS(t)
	ctx := context.Background()
	d, err := f.MkDir(ctx, vfs.RootID, "d", 0o755, me)
	require.NoError(t, err)
	e, h := create(t, f, d.Attr.Inode, "f")
	require.NoError(t, f.Write(ctx, h, 0, []byte("one")))

	require.NoError(t, f.Rename(ctx, vfs.RootID, "d", vfs.RootID, "e"))
	require.NoError(t, f.Write(ctx, h, 3, []byte("two"))) // the open handle follows the rename
	require.NoError(t, f.Flush(ctx, h, vfs.PID(1)))
	f.Release(h)

	_, err = f.Lookup(ctx, vfs.RootID, "d")
	require.Equal(t, vfs.CodeNotFound, vfs.CodeOf(err))
	e2, err := f.Lookup(ctx, vfs.RootID, "e")
	require.NoError(t, err)
	require.Equal(t, d.Attr.Inode, e2.Attr.Inode)
	moved, err := f.Lookup(ctx, e2.Attr.Inode, "f")
	require.NoError(t, err)
	require.Equal(t, e.Attr.Inode, moved.Attr.Inode)
	require.Equal(t, "onetwo", readAll(t, f, moved.Attr.Inode))

	// A file renamed over another replaces it.
	_, h = create(t, f, vfs.RootID, "g")
	require.NoError(t, f.Write(ctx, h, 0, []byte("gee")))
	f.Release(h)
	require.NoError(t, f.Rename(ctx, vfs.RootID, "g", e2.Attr.Inode, "f"))
	require.Equal(t, "gee", readAll(t, f, lookupID(t, f, e2.Attr.Inode, "f")))
}

func lookupID(t *testing.T, f *FS, parent vfs.InodeID, name string) vfs.InodeID {
	t.Helper()
	e, err := f.Lookup(context.Background(), parent, name)
	require.NoError(t, err)
	return e.Attr.Inode
}

func TestUnlinkedOpenFileStaysReadable(t *testing.T) {
	f, _, _ := newFS(t)
	ctx := context.Background()
	e, h := create(t, f, vfs.RootID, "tmp")
	require.NoError(t, f.Write(ctx, h, 0, []byte("scratch")))
	require.NoError(t, f.Unlink(ctx, vfs.RootID, "tmp"))
	buf := make([]byte, 16)
	n, err := f.Read(ctx, h, 0, buf)
	require.NoError(t, err)
	require.Equal(t, "scratch", string(buf[:n]))
	at, _, err := f.GetAttr(ctx, e.Attr.Inode)
	require.NoError(t, err)
	require.Zero(t, at.Nlink)
	f.Release(h)
	_, err = f.Lookup(ctx, vfs.RootID, "tmp")
	require.Equal(t, vfs.CodeNotFound, vfs.CodeOf(err))
}

func TestDirectoriesSymlinksAndAttributes(t *testing.T) {
	f, _, _ := newFS(t)
	ctx := context.Background()
	d, err := f.MkDir(ctx, vfs.RootID, "d", 0o700, me)
	require.NoError(t, err)
	require.True(t, d.Attr.Mode.IsDir())
	_, h := create(t, f, d.Attr.Inode, "x")
	f.Release(h)
	require.Equal(t, vfs.CodeNotEmpty, vfs.CodeOf(f.RmDir(ctx, vfs.RootID, "d")))
	require.NoError(t, f.Unlink(ctx, d.Attr.Inode, "x"))
	require.NoError(t, f.RmDir(ctx, vfs.RootID, "d"))

	s, err := f.Symlink(ctx, vfs.RootID, "link", "some/target", me)
	require.NoError(t, err)
	require.Equal(t, os.ModeSymlink, s.Attr.Mode&os.ModeType)
	target, err := f.ReadLink(ctx, s.Attr.Inode)
	require.NoError(t, err)
	require.Equal(t, "some/target", target)

	e, h := create(t, f, vfs.RootID, "m")
	f.Release(h)
	mode := os.FileMode(0o600) | os.ModeSetgid
	uid, mt := uint32(42), time.Unix(1700000000, 0)
	at, _, err := f.SetAttr(ctx, e.Attr.Inode, vfs.SetAttrRequest{Mode: &mode, UID: &uid, Mtime: &mt})
	require.NoError(t, err)
	require.Equal(t, mode, at.Mode)
	require.Equal(t, uint32(42), at.UID)
	require.Equal(t, uint32(100), at.GID, "chown of the uid alone keeps the gid")
	require.True(t, at.Mtime.Equal(mt))

	h2, err := f.OpenDir(ctx, vfs.RootID)
	require.NoError(t, err)
	entries, err := f.ReadDir(ctx, h2, 0)
	require.NoError(t, err)
	var names []string
	for _, de := range entries {
		names = append(names, de.Name)
		if de.Name == "link" {
			require.Equal(t, os.ModeSymlink, de.Type)
		}
	}
	require.Equal(t, []string{".", "..", "link", "m"}, names)
	f.ReleaseDir(h2)

	_, err = f.GetXattr(ctx, e.Attr.Inode, "user.anything")
	require.Equal(t, vfs.CodeNoAttr, vfs.CodeOf(err))
	_, _, err = f.Create(ctx, vfs.RootID, "m", 0o644, me)
	require.Equal(t, vfs.CodeExists, vfs.CodeOf(err))
}

// A linked file whose first name left it by a remote change keeps its own attributes: the
// kernel asks by inode, and the name that left now names the bucket's new file (found by
// conformance's TestSyncHardLinkRemoteChangeOfFirstName on a loaded machine: the kernel got the
// other file's size and an O_APPEND wrote past a gap of zeros).
func TestGetAttrOfLinkWhoseFirstNameLeft(t *testing.T) {
	ctx := context.Background()
	f, l, _ := newFS(t)
	e, h := create(t, f, vfs.RootID, "x")
	require.NoError(t, f.Write(ctx, h, 0, []byte("linked")))
	require.NoError(t, f.Flush(ctx, h, vfs.PID(me.Pid)))
	f.Release(h)
	_, err := f.Link(ctx, e.Attr.Inode, vfs.RootID, "y")
	require.NoError(t, err)
	dirty, err := l.Dirty()
	require.NoError(t, err)
	for _, info := range dirty { // both names are in the bucket now
		_, err := l.MarkUploaded(info.Path, info.State.Gen, syncrule.Version{ETag: `"v1-` + info.Path + `"`})
		require.NoError(t, err)
	}
	_, err = l.ApplyRemote("x", local.KindFile, syncrule.RemoteChanged{Version: syncrule.Version{ETag: `"theirs"`}, Size: 14}, syncrule.Params{})
	require.NoError(t, err)
	a, _, err := f.GetAttr(ctx, e.Attr.Inode)
	require.NoError(t, err)
	require.EqualValues(t, 6, a.Size, "the inode of y took the size of the new x")
}

// Names outside the namespaces sync mode keeps (system.*, which ls -l asks of every entry)
// answer ENODATA without reading the store, even when another client stored one in the
// object's metadata; they are not listed either. The kept ones are served.
func TestXattrsOutsideKeptNamespacesAreNotServed(t *testing.T) {
	f, l, _ := newFS(t)
	ctx := context.Background()
	v := syncrule.Version{ETag: `"e1"`}
	require.NoError(t, l.ImportListing("", []local.Remote{{Name: "a", Kind: local.KindFile, Version: v, Size: 0}}))
	require.NoError(t, l.SetRemoteAttr("a", v, local.Attr{Mode: 0o644, Xattrs: map[string][]byte{
		"user.x": []byte("1"), "system.posix_acl_access": []byte("acl")}}, local.KindFile, ""))
	id := lookupID(t, f, vfs.RootID, "a")

	got, err := f.GetXattr(ctx, id, "user.x")
	require.NoError(t, err)
	require.Equal(t, "1", string(got))
	_, err = f.GetXattr(ctx, id, "system.posix_acl_access")
	require.Equal(t, vfs.CodeNoAttr, codeOf(err))
	names, err := f.ListXattr(ctx, id)
	require.NoError(t, err)
	require.Equal(t, []string{"user.x"}, names)
	err = f.SetXattr(ctx, id, "system.posix_acl_access", []byte("x"), 0)
	require.Equal(t, vfs.CodeNotSupported, codeOf(err))
}

func codeOf(err error) vfs.Code {
	var e *vfs.Error
	if !errors.As(err, &e) {
		return -1
	}
	return e.Code
}
