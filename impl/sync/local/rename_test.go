package local

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

func TestRenameFileIsMetadataOnly(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "content")
	before, _ := l.Stat("a")
	require.NoError(t, l.Rename("a", "b"))
	_, err := l.Stat("a")
	require.ErrorIs(t, err, ErrNotFound)
	after, err := l.Stat("b")
	require.NoError(t, err)
	require.Equal(t, before.ID, after.ID, "same data file")
	require.Equal(t, "content", readFile(t, l, "b"))
	ops, _ := l.Pending()
	require.Empty(t, ops, "the bucket never had a: nothing to copy")
	require.Equal(t, []string{"b"}, dirtyPaths(t, l))
}

func TestRenameOfUploadedFileQueuesCopyDelete(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "content")
	upload(t, l, "a")
	require.NoError(t, l.Rename("a", "b"))
	ops, _ := l.Pending()
	require.Len(t, ops, 1)
	op := ops[0]
	require.Equal(t, OpRename, op.Kind)
	require.Equal(t, "pre/a", op.Key)
	require.Equal(t, "pre/b", op.DstKey)
	require.Equal(t, "etag-a", op.Base.ETag)
	// The engine's copy succeeded: b is clean, since a had no unsynced change.
	clean, err := l.MarkUploaded("b", op.Gen, syncrule.Version{ETag: "copy"})
	require.NoError(t, err)
	require.True(t, clean)
	require.NoError(t, l.Done(op.ID))
	ops, _ = l.Pending()
	require.Empty(t, ops)
	require.Empty(t, dirtyPaths(t, l))
}

func TestRenameOfChangedUploadedFileStaysDirtyAfterCopy(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "v1")
	upload(t, l, "a")
	writeFile(t, l, "a", "v2")
	require.NoError(t, l.Rename("a", "b"))
	ops, _ := l.Pending()
	require.Len(t, ops, 1)
	clean, err := l.MarkUploaded("b", ops[0].Gen, syncrule.Version{ETag: "copy"})
	require.NoError(t, err)
	require.False(t, clean, "the copy has v1, the file is v2")
	a, err := l.Apply("b", syncrule.Flush{}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Equal(t, "copy", a.Ops[0].Base.ETag, "the next PUT is conditional on the copy")
	require.False(t, a.Ops[0].MetadataOnly)
}

func TestRenameReplacesFile(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "A")
	writeFile(t, l, "b", "B")
	upload(t, l, "b")
	bInfo, _ := l.Stat("b")
	require.NoError(t, l.Rename("a", "b"))
	require.Equal(t, "A", readFile(t, l, "b"))
	require.NoFileExists(t, l.dataPath(bInfo.ID))
	info, _ := l.Stat("b")
	require.Equal(t, "etag-b", info.State.Base.ETag, "the PUT overwrites b's object conditionally")
	require.Greater(t, info.State.Gen, bInfo.State.Gen)
}

func TestRenameErrors(t *testing.T) {
	l, _ := newLayer(t)
	_, _ = l.Mkdir("d", 0o755, 0, 0)
	_, _ = l.Mkdir("e", 0o755, 0, 0)
	writeFile(t, l, "e/x", "x")
	writeFile(t, l, "f", "f")
	require.ErrorIs(t, l.Rename("d", "f"), ErrNotDir)
	require.ErrorIs(t, l.Rename("f", "d"), ErrIsDir)
	require.ErrorIs(t, l.Rename("d", "e"), ErrNotEmpty)
	require.ErrorIs(t, l.Rename("d", "d/sub"), ErrInvalid)
	require.ErrorIs(t, l.Rename("nope", "x"), ErrNotFound)
	require.ErrorIs(t, l.Rename("f", "nope/x"), ErrNotFound)
	require.ErrorIs(t, l.Rename("", "x"), ErrInvalid)
	require.NoError(t, l.Rename("f", "f"))
	require.NoError(t, l.Rename("d", "e/xy"))
	_, err := l.Stat("e/xy")
	require.NoError(t, err)
	lf := syncrule.LostFoundDir(l.FSID())
	_, _ = l.Mkdir(lf, 0o700, 0, 0)
	require.ErrorIs(t, l.Rename("f", lf+"/f"), ErrPermitted)
	require.ErrorIs(t, l.Rename(lf, "g"), ErrPermitted)
	require.ErrorIs(t, l.Rmdir(lf), ErrPermitted)
}

func TestRenameDirectoryMovesDescendantsAndOpenHandles(t *testing.T) {
	l, _ := newLayer(t)
	for _, d := range []string{"a", "a/b", "a/b/c", "ab", "a-"} {
		_, err := l.Mkdir(d, 0o755, 0, 0)
		require.NoError(t, err)
	}
	writeFile(t, l, "a/x", "x")
	writeFile(t, l, "a/b/c/y", "y")
	writeFile(t, l, "ab/z", "z")
	upload(t, l, "a/b")
	upload(t, l, "a/b/c/y")
	h, err := l.BeginWrite("a/x")
	require.NoError(t, err)

	require.NoError(t, l.Rename("a", "q"))
	_, err = h.WriteAt([]byte("X2"), 0)
	require.NoError(t, err)
	require.NoError(t, h.Close())

	for _, p := range []string{"a", "a/b", "a/x", "a/b/c/y"} {
		_, err := l.Stat(p)
		require.ErrorIs(t, err, ErrNotFound, p)
	}
	for _, p := range []string{"q", "q/b", "q/b/c", "ab", "ab/z", "a-"} {
		_, err := l.Stat(p)
		require.NoError(t, err, p)
	}
	require.Equal(t, "X2", readFile(t, l, "q/x"), "a handle follows its file")
	require.Equal(t, "y", readFile(t, l, "q/b/c/y"))
	ops, _ := l.Pending()
	got := map[string]string{}
	for _, op := range ops {
		got[op.Key] = op.DstKey
	}
	require.Equal(t, map[string]string{"pre/a/b/": "pre/q/b/", "pre/a/b/c/y": "pre/q/b/c/y"}, got)

	l = reopen(t, l)
	ls, _ := l.List("q/b/c")
	require.Equal(t, []string{"q/b/c/y"}, names(ls))
}

func TestRenameDirectoryLeavesTombstones(t *testing.T) {
	l, _ := newLayer(t)
	_, _ = l.Mkdir("a", 0o755, 0, 0)
	writeFile(t, l, "a/t", "t")
	upload(t, l, "a/t")
	require.NoError(t, l.Remove("a/t"))
	writeFile(t, l, "a/u", "u")
	require.NoError(t, l.Rename("a", "b"))
	require.Equal(t, []string{"a/t", "b", "b/u"}, dirtyPaths(t, l), "the delete of the old key stays owed")
	_, _ = l.Mkdir("c", 0o755, 0, 0)
	require.NoError(t, l.Rename("b/u", "c/u"))
	require.NoError(t, l.Rmdir("b"))
}
