package local

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

var v2 = syncrule.Version{ETag: "theirs"}

// startUpload plays the engine's start of a write-back of path and returns its op.
func startUpload(t *testing.T, l *Layer, path string) Op {
	t.Helper()
	res, err := l.Apply(path, syncrule.Flush{}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Len(t, res.Ops, 1)
	return res.Ops[0]
}

func lostFoundPath(l *Layer, id uint64, base string) string {
	return keymap.Join(syncrule.LostFoundDir(l.FSID()), syncrule.LostFoundName(id, base))
}

func TestConflictUploadMovesToLostFound(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)
	upload(t, l, "d")
	writeFile(t, l, "d/f", "base")
	upload(t, l, "d/f")
	writeFile(t, l, "d/f", "my edit")
	op := startUpload(t, l, "d/f")
	require.Equal(t, OpUpload, op.Kind)

	res, err := l.Apply("d/f", syncrule.UploadFailed{Gen: op.Gen, Conflict: true, Remote: v2, RemoteSize: 6}, syncrule.DefaultParams())
	require.NoError(t, err)
	lf := lostFoundPath(l, 1, "f")
	require.Equal(t, lf, res.LostFound)
	require.False(t, res.NoBaseData)

	// The local version is in lost+found, with its original path, never to be uploaded.
	info, err := l.Stat(lf)
	require.NoError(t, err)
	require.Equal(t, "d/f", info.OriginalPath)
	require.True(t, info.State.LostFound)
	require.False(t, info.State.Dirty())
	require.Equal(t, "my edit", readFile(t, l, lf))
	ls, err := l.List(syncrule.LostFoundDir(l.FSID()))
	require.NoError(t, err)
	require.Equal(t, []string{lf}, names(ls))

	// The path shows the bucket's version, clean, its data to be fetched.
	info, err = l.Stat("d/f")
	require.NoError(t, err)
	require.True(t, info.State.Base.Same(v2))
	require.False(t, info.State.Dirty())
	require.Equal(t, syncrule.NoData, info.State.Data)
	require.EqualValues(t, 6, info.Size)
	require.True(t, info.AttrPending)

	// The op is settled in the same transaction, nothing is dirty: a flush is done.
	ops, err := l.Pending()
	require.NoError(t, err)
	require.Empty(t, ops)
	require.Empty(t, dirtyPaths(t, l))

	// A second conflict gets a larger id; both survive a restart.
	require.NoError(t, l.PutData("d/f", v2, stringReader("theirs")))
	writeFile(t, l, "d/f", "second edit")
	op = startUpload(t, l, "d/f")
	res, err = l.Apply("d/f", syncrule.UploadFailed{Gen: op.Gen, Conflict: true}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Equal(t, lostFoundPath(l, 2, "f"), res.LostFound)
	_, err = l.Stat("d/f")
	require.ErrorIs(t, err, ErrNotFound, "the bucket's absence wins")
	l = reopen(t, l)
	require.Equal(t, "my edit", readFile(t, l, lf))
	require.Equal(t, "second edit", readFile(t, l, lostFoundPath(l, 2, "f")))
	require.Empty(t, dirtyPaths(t, l))
}

func TestConflictLostFoundProtections(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "base")
	upload(t, l, "f")
	writeFile(t, l, "f", "mine")
	op := startUpload(t, l, "f")
	res, err := l.Apply("f", syncrule.UploadFailed{Gen: op.Gen, Conflict: true}, syncrule.DefaultParams())
	require.NoError(t, err)
	lf, dir := res.LostFound, syncrule.LostFoundDir(l.FSID())
	writeFile(t, l, "g", "other")

	// C5: no renames within, into or out of lost+found, and the directory stays.
	require.ErrorIs(t, l.Rename(lf, dir+"/x"), ErrPermitted)
	require.ErrorIs(t, l.Rename(lf, "f"), ErrPermitted)
	require.ErrorIs(t, l.Rename("g", dir+"/g"), ErrPermitted)
	require.ErrorIs(t, l.Rename(dir, "lf"), ErrPermitted)
	require.ErrorIs(t, l.Rmdir(dir), ErrPermitted)
	_, err = l.Create(dir+"/new", 0o644, 0, 0)
	require.ErrorIs(t, err, ErrPermitted)
	_, err = l.Mkdir(dir+"/sub", 0o755, 0, 0)
	require.ErrorIs(t, err, ErrPermitted)
	_, err = l.Mkdir(dir, 0o755, 0, 0)
	require.ErrorIs(t, err, ErrPermitted)
	require.ErrorIs(t, l.Rename("g", dir), ErrPermitted)

	// Copied back to its original path it is a new file, uploaded like one (C3).
	info, err := l.Stat(lf)
	require.NoError(t, err)
	writeFile(t, l, info.OriginalPath, readFile(t, l, lf))
	op = startUpload(t, l, "f")
	require.True(t, op.IfNoneMatch)

	// Deleted, it is gone; the directory stays, empty, and cannot be removed.
	require.NoError(t, l.Remove(lf))
	ls, err := l.List(dir)
	require.NoError(t, err)
	require.Empty(t, ls)
	require.ErrorIs(t, l.Rmdir(dir), ErrPermitted)
	for _, d := range dirtyPaths(t, l) {
		require.NotContains(t, d, dir, "nothing in lost+found is ever uploaded (C5)")
	}
}

func TestConflictDeleteDropped(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "base")
	upload(t, l, "f")
	require.NoError(t, l.Remove("f"))
	res, err := l.Apply("f", syncrule.Flush{}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Len(t, res.Ops, 1)
	require.Equal(t, OpDelete, res.Ops[0].Kind)
	res, err = l.Apply("f", syncrule.DeleteFailed{Gen: res.Ops[0].Gen, Conflict: true, Remote: v2, RemoteSize: 6}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Empty(t, res.LostFound, "a local delete has nothing to keep (C6)")
	info, err := l.Stat("f")
	require.NoError(t, err, "the bucket's version reappears")
	require.True(t, info.State.Base.Same(v2))
	require.False(t, info.State.Dirty())
	ops, _ := l.Pending()
	require.Empty(t, ops)
}

func TestConflictMetadataOnlyKeepsAttributes(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{{Name: "big", Kind: KindFile, Version: syncrule.Version{ETag: "b1"}, Size: 1 << 30}}))
	require.NoError(t, l.Chmod("big", 0o600))
	op := startUpload(t, l, "big")
	require.True(t, op.MetadataOnly)
	res, err := l.Apply("big", syncrule.UploadFailed{Gen: op.Gen, Conflict: true, Remote: v2, RemoteSize: 3}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.True(t, res.NoBaseData)
	info, err := l.Stat(res.LostFound)
	require.NoError(t, err)
	require.EqualValues(t, 0o600, info.Attr.Mode)
	require.EqualValues(t, 0, info.Size)
	require.Equal(t, "big", info.OriginalPath)
	require.Equal(t, "", readFile(t, l, res.LostFound))
	l = reopen(t, l)
	_, err = l.Stat(res.LostFound)
	require.NoError(t, err)
}

func TestConflictDirectoryMarker(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)
	upload(t, l, "d")
	writeFile(t, l, "d/f", "x")
	require.NoError(t, l.Chmod("d", 0o700))
	op := startUpload(t, l, "d")
	res, err := l.Apply("d", syncrule.UploadFailed{Gen: op.Gen, Conflict: true}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Empty(t, res.LostFound, "a marker holds only attributes")
	info, err := l.Stat("d")
	require.NoError(t, err)
	require.False(t, info.State.Dirty())
	require.True(t, info.State.Base.IsZero())
	require.Equal(t, "x", readFile(t, l, "d/f"), "what is under it stays")
}

func TestApplyRemote(t *testing.T) {
	p := syncrule.DefaultParams()
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{{Name: "notyet", Kind: KindDir}}))

	// An object new to an imported directory.
	res, err := l.ApplyRemote("new", KindFile, syncrule.RemoteChanged{Version: v2, Size: 10}, p)
	require.NoError(t, err)
	require.Contains(t, res.Actions, syncrule.Action(syncrule.ImportRemote{Version: v2, Size: 10, FetchData: true}))
	info, err := l.Stat("new")
	require.NoError(t, err)
	require.True(t, info.State.Base.Same(v2))
	require.True(t, info.AttrPending)
	res, err = l.ApplyRemote("newdir", KindDir, syncrule.RemoteChanged{}, p)
	require.NoError(t, err)
	info, err = l.Stat("newdir")
	require.NoError(t, err)
	require.Equal(t, KindDir, info.Kind)
	require.False(t, info.Imported)
	// Under a directory whose listing is not in, the listing will bring it.
	_, err = l.ApplyRemote("notyet/x", KindFile, syncrule.RemoteChanged{Version: v2, Size: 1}, p)
	require.NoError(t, err)
	_, err = l.Stat("notyet/x")
	require.ErrorIs(t, err, ErrNotFound)

	// A clean file: the change is imported and the stale data dropped.
	writeFile(t, l, "clean", "old")
	upload(t, l, "clean")
	before, _ := l.Stat("clean")
	res, err = l.ApplyRemote("clean", KindFile, syncrule.RemoteChanged{Version: v2, Size: 6}, p)
	require.NoError(t, err)
	require.Empty(t, res.LostFound)
	require.Contains(t, res.Actions, syncrule.Action(syncrule.InvalidateKernelCache{}))
	info, _ = l.Stat("clean")
	require.Equal(t, syncrule.NoData, info.State.Data)
	require.True(t, info.State.Base.Same(v2))
	require.NoFileExists(t, l.dataPath(before.ID))
	res, err = l.ApplyRemote("clean", KindFile, syncrule.RemoteChanged{Version: v2, Size: 6}, p)
	require.NoError(t, err)
	require.Empty(t, res.Actions, "the same version again is nothing")

	// A clean file open for reading is left for a later poll.
	writeFile(t, l, "open", "old")
	upload(t, l, "open")
	h, err := l.OpenRead("open")
	require.NoError(t, err)
	_, err = l.ApplyRemote("open", KindFile, syncrule.RemoteDeleted{}, p)
	require.ErrorIs(t, err, ErrBusy)
	require.NoError(t, h.Close())
	_, err = l.ApplyRemote("open", KindFile, syncrule.RemoteDeleted{}, p)
	require.NoError(t, err)
	_, err = l.Stat("open")
	require.ErrorIs(t, err, ErrNotFound)

	// A dirty file: the conflict move, with its open handle following it.
	writeFile(t, l, "dirty", "base")
	upload(t, l, "dirty")
	w, err := l.BeginWrite("dirty")
	require.NoError(t, err)
	_, err = w.WriteAt([]byte("mine"), 0)
	require.NoError(t, err)
	require.NoError(t, w.Sync())
	res, err = l.ApplyRemote("dirty", KindFile, syncrule.RemoteChanged{Version: v2, Size: 6}, p)
	require.NoError(t, err)
	require.NotEmpty(t, res.LostFound)
	_, err = w.WriteAt([]byte(" and more"), 4)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.Equal(t, "mine and more", readFile(t, l, res.LostFound), "nothing a program wrote is lost")
	info, _ = l.Stat(res.LostFound)
	require.False(t, info.State.Dirty())
	info, _ = l.Stat("dirty")
	require.True(t, info.State.Base.Same(v2))
	require.Empty(t, dirtyPaths(t, l))

	// Lost+found is never touched by remote changes (C5).
	res2, err := l.ApplyRemote(res.LostFound, KindFile, syncrule.RemoteDeleted{}, p)
	require.NoError(t, err)
	require.Empty(t, res2.Actions)
	require.Equal(t, "mine and more", readFile(t, l, res.LostFound))

	// In flight: held until the op's result.
	writeFile(t, l, "busy", "x")
	op := startUpload(t, l, "busy")
	res, err = l.ApplyRemote("busy", KindFile, syncrule.RemoteChanged{Version: v2, Size: 6}, p)
	require.NoError(t, err)
	require.True(t, res.State.RemoteSeen)
	require.Empty(t, res.LostFound)
	_, err = l.Apply("busy", syncrule.UploadSucceeded{Gen: op.Gen, Version: syncrule.Version{ETag: "ours"}}, p)
	require.NoError(t, err)

	// A tombstone: the local delete is dropped (C6).
	writeFile(t, l, "gone", "x")
	upload(t, l, "gone")
	require.NoError(t, l.Remove("gone"))
	_, err = l.ApplyRemote("gone", KindFile, syncrule.RemoteChanged{Version: v2, Size: 6}, p)
	require.NoError(t, err)
	info, err = l.Stat("gone")
	require.NoError(t, err)
	require.False(t, info.State.Dirty())

	_, err = l.ApplyRemote("x", KindFile, syncrule.Tick{}, p)
	require.ErrorIs(t, err, ErrInvalid)
}
