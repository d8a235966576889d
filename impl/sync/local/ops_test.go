package local

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

func TestCreateStatLookupList(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Mkdir("d", 0o750, 1, 2)
	require.NoError(t, err)
	for _, n := range []string{"b", "-a-", "a", "-a", "\xff", "B"} {
		_, err := l.Create("d/"+n, 0o600, 1, 2)
		require.NoError(t, err)
	}
	_, err = l.Mkdir("d/c", 0o755, 1, 2)
	require.NoError(t, err)
	ls, err := l.List("d")
	require.NoError(t, err)
	require.Equal(t, []string{"d/-a", "d/-a-", "d/B", "d/a", "d/b", "d/c", "d/\xff"}, names(ls), "byte order (K6)")

	root, err := l.List("")
	require.NoError(t, err)
	require.Equal(t, []string{"d"}, names(root))

	info, err := l.Lookup("d", "a")
	require.NoError(t, err)
	require.Equal(t, KindFile, info.Kind)
	require.Equal(t, Attr{Mode: 0o600, UID: 1, GID: 2, Mtime: info.Attr.Mtime, Ctime: info.Attr.Mtime}, info.Attr)
	require.True(t, info.State.Dirty())
	require.Equal(t, syncrule.LocalData, info.State.Data)

	_, err = l.Create("d/a", 0o600, 1, 2)
	require.ErrorIs(t, err, ErrExists)
	_, err = l.Create("nope/x", 0o600, 1, 2)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = l.Create("d/a/x", 0o600, 1, 2)
	require.ErrorIs(t, err, ErrNotDir)
	_, err = l.Create("d/.", 0o600, 1, 2)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = l.List("d/a")
	require.ErrorIs(t, err, ErrNotDir)
	_, err = l.Lookup("d", "zz")
	require.ErrorIs(t, err, ErrNotFound)

	l = reopen(t, l)
	ls2, err := l.List("d")
	require.NoError(t, err)
	require.Equal(t, names(ls), names(ls2))
}

func TestWriteReadTruncate(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Create("f", 0o644, 0, 0)
	require.NoError(t, err)
	_, err = l.WriteAt("f", []byte("abc"), 5)
	require.NoError(t, err)
	require.Equal(t, "\x00\x00\x00\x00\x00abc", readFile(t, l, "f"))
	require.NoError(t, l.Truncate("f", 6))
	require.Equal(t, "\x00\x00\x00\x00\x00a", readFile(t, l, "f"))
	require.NoError(t, l.Truncate("f", 8))
	require.Equal(t, "\x00\x00\x00\x00\x00a\x00\x00", readFile(t, l, "f"))
	buf := make([]byte, 4)
	n, err := l.ReadAt("f", buf, 6)
	require.Equal(t, io.EOF, err)
	require.Equal(t, 2, n)

	_, err = l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)
	_, err = l.WriteAt("d", []byte("x"), 0)
	require.ErrorIs(t, err, ErrIsDir)
	_, err = l.ReadAt("d", buf, 0)
	require.ErrorIs(t, err, ErrIsDir)

	l = reopen(t, l)
	require.Equal(t, "\x00\x00\x00\x00\x00a\x00\x00", readFile(t, l, "f"))
	info, _ := l.Stat("f")
	require.EqualValues(t, 8, info.Size)
}

func TestHandleStatSeesUnsyncedWrites(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Create("f", 0o644, 0, 0)
	require.NoError(t, err)
	h, err := l.BeginWrite("f")
	require.NoError(t, err)
	_, err = h.WriteAt([]byte("hello"), 0)
	require.NoError(t, err)
	info, _ := l.Stat("f")
	require.EqualValues(t, 5, info.Size)
	buf := make([]byte, 5)
	_, err = h.ReadAt(buf, 0)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf))
	require.NoError(t, h.Truncate(2))
	require.NoError(t, h.Close())
	require.NoError(t, h.Close(), "double close is harmless")
	_, err = h.WriteAt([]byte("x"), 0)
	require.ErrorIs(t, err, ErrInvalid)
	require.Equal(t, "he", readFile(t, l, "f"))
}

func TestRemoveAndRmdir(t *testing.T) {
	l, _ := newLayer(t)
	_, _ = l.Mkdir("d", 0o755, 0, 0)
	writeFile(t, l, "d/f", "x")
	require.ErrorIs(t, l.Remove("d"), ErrIsDir)
	require.ErrorIs(t, l.Rmdir("d/f"), ErrNotDir)
	require.ErrorIs(t, l.Rmdir("d"), ErrNotEmpty)
	require.ErrorIs(t, l.Rmdir(""), ErrPermitted)
	require.ErrorIs(t, l.Remove("d/nope"), ErrNotFound)
	info, _ := l.Stat("d/f")
	require.NoError(t, l.Remove("d/f"))
	_, err := l.Stat("d/f")
	require.ErrorIs(t, err, ErrNotFound)
	require.NoFileExists(t, l.dataPath(info.ID))
	require.NotContains(t, dirtyPaths(t, l), "d/f", "never uploaded: nothing owed")
	require.NoError(t, l.Rmdir("d"))
	_, err = l.Stat("d")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestRemoveOfUploadedFileLeavesTombstone(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "v1")
	require.True(t, upload(t, l, "f"))
	require.Empty(t, dirtyPaths(t, l))
	require.NoError(t, l.Remove("f"))
	require.Equal(t, []string{"f"}, dirtyPaths(t, l), "the delete is owed")
	ls, _ := l.List("")
	require.Empty(t, ls)

	a, err := l.Apply("f", syncrule.Flush{Now: time.Now()}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Len(t, a.Ops, 1)
	require.Equal(t, OpDelete, a.Ops[0].Kind)
	require.Equal(t, "pre/f", a.Ops[0].Key)
	require.Equal(t, "etag-f", a.Ops[0].Base.ETag)

	// A new file at the path folds the delete into one conditional PUT (syncrule).
	writeFile(t, l, "f", "v2")
	info, _ := l.Stat("f")
	require.Equal(t, "etag-f", info.State.Base.ETag)
	require.Equal(t, "v2", readFile(t, l, "f"))
}

func TestTombstoneOfOtherKindQueuesDelete(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "x", "v1")
	upload(t, l, "x")
	require.NoError(t, l.Remove("x"))
	_, err := l.Mkdir("x", 0o755, 0, 0)
	require.NoError(t, err)
	ops, _ := l.Pending()
	require.Len(t, ops, 1)
	require.Equal(t, Op{ID: ops[0].ID, Kind: OpDelete, Path: "x", Key: "pre/x", Gen: ops[0].Gen,
		Base: syncrule.Version{ETag: "etag-x"}, Queued: ops[0].Queued}, ops[0])
}

func TestSetattrIsMetadataOnlyChange(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "data")
	upload(t, l, "f")
	require.NoError(t, l.Chmod("f", 0o600))
	require.NoError(t, l.Chown("f", 7, 8))
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, l.Utimens("f", mt, nil))
	info, _ := l.Stat("f")
	require.False(t, info.Attr.Ctime.Before(info.Attr.Mtime), "utimens sets the mtime and changes the ctime")
	require.Equal(t, Attr{Mode: 0o600, UID: 7, GID: 8, Mtime: mt, Ctime: info.Attr.Ctime}, info.Attr)
	require.True(t, info.State.Dirty())
	a, err := l.Apply("f", syncrule.Flush{Now: time.Now()}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Len(t, a.Ops, 1)
	require.True(t, a.Ops[0].MetadataOnly, "Y7: CopyObject onto itself")
	require.Equal(t, "etag-f", a.Ops[0].Base.ETag)

	require.NoError(t, l.Chmod("", 0o700), "the root's attributes are kept but never uploaded")
	root, _ := l.Stat("")
	require.EqualValues(t, 0o700, root.Attr.Mode)
	require.False(t, root.State.Dirty())
}

func TestUtimensWinsOverEarlierUnsyncedWrite(t *testing.T) {
	l, _ := newLayer(t)
	_, _ = l.Create("f", 0o644, 0, 0)
	h, _ := l.BeginWrite("f")
	_, _ = h.WriteAt([]byte("x"), 0)
	mt := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, l.Utimens("f", mt, nil))
	require.NoError(t, h.Close())
	info, _ := l.Stat("f")
	require.True(t, info.Attr.Mtime.Equal(mt))
}

func TestSymlink(t *testing.T) {
	l, _ := newLayer(t)
	info, err := l.Symlink("../target", "s", 3, 4)
	require.NoError(t, err)
	require.Equal(t, KindSymlink, info.Kind)
	require.EqualValues(t, len("../target"), info.Size)
	got, err := l.Readlink("s")
	require.NoError(t, err)
	require.Equal(t, "../target", got)
	writeFile(t, l, "f", "x")
	_, err = l.Readlink("f")
	require.ErrorIs(t, err, ErrInvalid)
	_, err = l.WriteAt("s", []byte("x"), 0)
	require.ErrorIs(t, err, ErrInvalid)
	l = reopen(t, l)
	got, _ = l.Readlink("s")
	require.Equal(t, "../target", got)
}

func TestCreateOpenIsDirtyAndDurable(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{Bucket: "b"})
	require.NoError(t, err)
	info, h, err := l.CreateOpen("new", 0o600, 1, 2)
	require.NoError(t, err)
	require.True(t, info.State.Dirty(), "the create is the recorded intent")
	_, err = h.WriteAt([]byte("data"), 0)
	require.NoError(t, err)
	require.NoError(t, h.Close())
	require.NoError(t, l.Close())
	l, err = Open(dir, Options{Bucket: "b"})
	require.NoError(t, err)
	defer l.Close()
	got := make([]byte, 8)
	n, _ := l.ReadAt("new", got, 0)
	require.Equal(t, "data", string(got[:n]))
	st, err := l.Stat("new")
	require.NoError(t, err)
	require.True(t, st.State.Dirty())
	require.Equal(t, int64(4), st.Size)
}

func TestExpireUnusedDropsOnlyCleanUnusedData(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l, err := Open(t.TempDir(), Options{Bucket: "b", Clock: clockFunc(func() time.Time { return now })})
	require.NoError(t, err)
	defer l.Close()
	for _, name := range []string{"clean-old", "clean-read", "dirty", "open"} {
		_, err := l.WriteAt(name, nil, 0)
		require.Error(t, err) // no such file yet
		_, h, err := l.CreateOpen(name, 0o644, 0, 0)
		require.NoError(t, err)
		_, err = h.WriteAt([]byte(name), 0)
		require.NoError(t, err)
		require.NoError(t, h.Close())
	}
	for _, name := range []string{"clean-old", "clean-read", "open"} {
		info, err := l.Stat(name)
		require.NoError(t, err)
		_, err = l.MarkUploaded(name, info.State.Gen, syncrule.Version{ETag: `"e-` + name + `"`})
		require.NoError(t, err)
	}
	p := syncrule.Params{ExpireAfter: time.Hour}
	now = now.Add(30 * time.Minute)
	require.NoError(t, l.Touch("clean-read", now))
	h, err := l.OpenRead("open")
	require.NoError(t, err)
	defer h.Close()

	now = now.Add(45 * time.Minute) // clean-old unused for 75 min, clean-read for 45
	n, b, err := l.ExpireUnused(now, p)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, int64(len("clean-old")), b)
	for name, want := range map[string]syncrule.DataState{"clean-old": syncrule.ExpiredData, "clean-read": syncrule.LocalData,
		"dirty": syncrule.LocalData, "open": syncrule.LocalData} {
		info, err := l.Stat(name)
		require.NoError(t, err)
		require.Equal(t, want, info.State.Data, name)
		require.Equal(t, int64(len(name)), info.Size, "metadata stays (Y10)")
	}
	_, _, err = l.ExpireUnused(now, syncrule.Params{ExpireAfter: -1})
	require.NoError(t, err)
}

func TestTimesFollowChanges(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l, err := Open(t.TempDir(), Options{Bucket: "b", Clock: clockFunc(func() time.Time { return now })})
	require.NoError(t, err)
	defer l.Close()
	_, err = l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)
	now = now.Add(time.Minute)
	_, err = l.Create("d/f", 0o644, 0, 0)
	require.NoError(t, err)
	d, _ := l.Stat("d")
	require.WithinDuration(t, now, d.Attr.Mtime, 0, "a create changes its directory's mtime")
	require.False(t, d.State.Dirty() && d.State.Gen > 1, "but does not make the directory dirty again")

	now = now.Add(time.Minute)
	require.NoError(t, l.Chmod("d/f", 0o600))
	f, _ := l.Stat("d/f")
	require.WithinDuration(t, now, f.Attr.ChangeTime(), 0, "chmod changes the ctime")
	require.WithinDuration(t, now.Add(-time.Minute), f.Attr.Mtime, 0, "but not the mtime")

	now = now.Add(time.Minute)
	require.NoError(t, l.Rename("d/f", "g"))
	d, _ = l.Stat("d")
	root, _ := l.Stat("")
	g, _ := l.Stat("g")
	require.WithinDuration(t, now, d.Attr.Mtime, 0)
	require.WithinDuration(t, now, root.Attr.Mtime, 0)
	require.WithinDuration(t, now, g.Attr.ChangeTime(), 0)

	now = now.Add(time.Minute)
	require.NoError(t, l.Remove("g"))
	root, _ = l.Stat("")
	require.WithinDuration(t, now, root.Attr.Mtime, 0, "an unlink changes its directory's mtime")
}

// StatOpenRead answers what Stat answers and opens what OpenRead opens, from one read of the
// store: a file being written answers its writer's size and bytes, a directory or a file
// whose bytes are in the bucket gets no handle, and a missing name is Stat's error.
func TestStatOpenReadIsStatThenOpenRead(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "hello")
	require.NoError(t, l.ImportListing("", []Remote{{Name: "remote", Kind: KindFile, Version: syncrule.Version{ETag: "r1"}, Size: 7}}))
	_, err := l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)

	readAll := func(h *Handle, n int) string {
		buf := make([]byte, n)
		got, err := h.ReadAt(buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		return string(buf[:got])
	}
	info, h, err := l.StatOpenRead("f")
	require.NoError(t, err)
	require.NotNil(t, h)
	want, err := l.Stat("f")
	require.NoError(t, err)
	require.Equal(t, want, info)
	require.Equal(t, "hello", readAll(h, 10))
	require.NoError(t, h.Close())

	w, err := l.BeginWrite("f")
	require.NoError(t, err)
	_, err = w.WriteAt([]byte(", world"), 5)
	require.NoError(t, err)
	info, h, err = l.StatOpenRead("f")
	require.NoError(t, err)
	require.Equal(t, int64(12), info.Size, "the writer's size, not the record's")
	require.Equal(t, "hello, world", readAll(h, 20))
	require.NoError(t, h.Close())
	require.NoError(t, w.Close())

	for _, path := range []string{"d", "remote"} {
		info, h, err = l.StatOpenRead(path)
		require.NoError(t, err, path)
		require.Nil(t, h, path)
		want, err := l.Stat(path)
		require.NoError(t, err)
		require.Equal(t, want, info, path)
	}
	_, _, err = l.StatOpenRead("missing")
	require.ErrorIs(t, err, ErrNotFound)
}
