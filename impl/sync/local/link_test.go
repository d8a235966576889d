package local

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// link makes b another name of a and checks the answer.
func link(t *testing.T, l *Layer, a, b string) Info {
	t.Helper()
	info, err := l.Link(a, b)
	require.NoError(t, err)
	require.Equal(t, b, info.Path)
	return info
}

func TestLinkIsOneFileWithTwoNames(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "one")
	require.True(t, upload(t, l, "a"))
	before, err := l.Stat("a")
	require.NoError(t, err)

	info := link(t, l, "a", "b")
	require.Equal(t, before.ID, info.ID)
	require.EqualValues(t, 2, info.Nlink)
	require.Equal(t, int64(3), info.Size)
	a, err := l.Stat("a")
	require.NoError(t, err)
	require.EqualValues(t, 2, a.Nlink)
	require.True(t, a.Attr.ChangeTime().After(before.Attr.ChangeTime()), "link(2) changes the file's ctime")
	require.Equal(t, before.Attr.Mtime, a.Attr.Mtime, "but not its mtime")
	// The new name is owed its object (the bucket has no links); the old one is not.
	require.Equal(t, []string{"b"}, dirtyPaths(t, l))

	// A write through either name is the file's: seen through both, owed to both.
	_, err = l.WriteAt("b", []byte("TWO"), 0)
	require.NoError(t, err)
	require.Equal(t, "TWO", readFile(t, l, "a"))
	require.ElementsMatch(t, []string{"a", "b"}, dirtyPaths(t, l))
	for _, p := range []string{"a", "b"} {
		require.True(t, upload(t, l, p), p)
	}
	require.Empty(t, dirtyPaths(t, l))

	// So is an attribute change, and an extended attribute.
	require.NoError(t, l.Chmod("a", 0o600))
	require.NoError(t, l.SetXattr("b", "user.k", []byte("v"), 0))
	b, err := l.Stat("b")
	require.NoError(t, err)
	require.EqualValues(t, 0o600, b.Attr.Mode)
	a, err = l.Stat("a")
	require.NoError(t, err)
	require.Equal(t, []byte("v"), a.Attr.Xattrs["user.k"])
	require.ElementsMatch(t, []string{"a", "b"}, dirtyPaths(t, l))

	// An open handle on one name writes the file of both; its unsynced size shows on both.
	h, err := l.BeginWrite("a")
	require.NoError(t, err)
	_, err = h.WriteAt([]byte("longer"), 0)
	require.NoError(t, err)
	b, err = l.Stat("b")
	require.NoError(t, err)
	require.EqualValues(t, 6, b.Size)
	require.NoError(t, h.Close())

	// Each name's snapshot is of the one data file, with that name's generation.
	for _, p := range []string{"a", "b"} {
		rc, gen, size, err := l.Snapshot(p)
		require.NoError(t, err)
		rc.Close()
		info, err := l.Stat(p)
		require.NoError(t, err)
		require.Equal(t, info.State.Gen, gen, p)
		require.EqualValues(t, 6, size)
	}
}

func TestUnlinkOfOneNameKeepsTheFile(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "data")
	link(t, l, "a", "b")
	id := mustStat(t, l, "a").ID
	ctime := mustStat(t, l, "b").Attr.ChangeTime()

	require.NoError(t, l.Remove("a"))
	b := mustStat(t, l, "b")
	require.EqualValues(t, 1, b.Nlink)
	require.True(t, b.Attr.ChangeTime().After(ctime), "unlink(2) changes the file's ctime")
	require.Equal(t, "data", readFile(t, l, "b"))
	require.FileExists(t, l.dataPath(id))

	// The last name takes the data with it.
	require.NoError(t, l.Remove("b"))
	require.NoFileExists(t, l.dataPath(id))
}

func TestRenameOverALinkKeepsItsOtherName(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "linked")
	link(t, l, "a", "b")
	writeFile(t, l, "c", "other")

	// Two names of one file: rename(2) does nothing.
	require.NoError(t, l.Rename("a", "b"))
	require.EqualValues(t, 2, mustStat(t, l, "a").Nlink)
	require.EqualValues(t, 2, mustStat(t, l, "b").Nlink)

	require.NoError(t, l.Rename("c", "b"))
	require.Equal(t, "other", readFile(t, l, "b"))
	require.Equal(t, "linked", readFile(t, l, "a"))
	require.EqualValues(t, 1, mustStat(t, l, "a").Nlink)

	// A renamed name stays a name of the file.
	link(t, l, "a", "x")
	_, err := l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)
	require.NoError(t, l.Rename("x", "d/x"))
	_, err = l.WriteAt("d/x", []byte("L"), 0)
	require.NoError(t, err)
	require.Equal(t, "Linked", readFile(t, l, "a"))
	require.EqualValues(t, 2, mustStat(t, l, "a").Nlink)
}

func TestLinkRefusals(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "x")
	_, err := l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)
	_, err = l.Link("d", "e")
	require.ErrorIs(t, err, ErrPermitted)
	_, err = l.Link("a", "d")
	require.ErrorIs(t, err, ErrExists)
	_, err = l.Link("missing", "b")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = l.Link("a", "nodir/b")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = l.Link("a", syncrule.LostFoundDir(l.FSID())+"/a")
	require.ErrorIs(t, err, ErrPermitted)
}

func TestLinkOfSymlinkAndFIFO(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Symlink("target", "s", 0, 0)
	require.NoError(t, err)
	_, err = l.Mknod("p", KindFIFO, 0o644, 0, 0, 0)
	require.NoError(t, err)
	for _, p := range []string{"s", "p"} {
		info := link(t, l, p, p+"2")
		require.EqualValues(t, 2, info.Nlink)
		require.NoError(t, l.Chmod(p+"2", 0o640))
		require.EqualValues(t, 0o640, mustStat(t, l, p).Attr.Mode)
		require.NoError(t, l.Remove(p))
		require.EqualValues(t, 1, mustStat(t, l, p+"2").Nlink)
	}
	target, err := l.Readlink("s2")
	require.NoError(t, err)
	require.Equal(t, "target", target)
	require.Equal(t, KindFIFO, mustStat(t, l, "p2").Kind)
}

func TestLinkedDataIsNotExpiredAndSurvivesReopen(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "kept")
	link(t, l, "a", "b")
	upload(t, l, "a")
	upload(t, l, "b")
	require.ErrorIs(t, l.Expire("a"), ErrBusy)
	n, _, err := l.ExpireUnused(mustStat(t, l, "a").State.LastUsed.Add(1e6*3600e9), syncrule.Params{})
	require.NoError(t, err)
	require.Zero(t, n)

	l = reopen(t, l)
	require.EqualValues(t, 2, mustStat(t, l, "b").Nlink)
	_, err = l.WriteAt("a", []byte("K"), 0)
	require.NoError(t, err)
	require.Equal(t, "Kept", readFile(t, l, "b"))
}

func TestRemoteChangeOfOneNameBreaksItsLink(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "base")
	link(t, l, "a", "b")
	upload(t, l, "a")
	upload(t, l, "b")
	id := mustStat(t, l, "a").ID

	// Clean: the bucket's new version of b replaces that name only.
	_, err := l.Apply("b", syncrule.RemoteChanged{Version: v2, Size: 6}, syncrule.DefaultParams())
	require.NoError(t, err)
	b := mustStat(t, l, "b")
	require.NotEqual(t, id, b.ID)
	require.Equal(t, syncrule.NoData, b.State.Data)
	a := mustStat(t, l, "a")
	require.EqualValues(t, 1, a.Nlink)
	require.Equal(t, "base", readFile(t, l, "a"))
	require.FileExists(t, l.dataPath(id))

	// Dirty: the bucket wins at the name, a copy of the local version goes to lost+found,
	// and the other name keeps the file.
	link(t, l, "a", "c")
	upload(t, l, "c")
	_, err = l.WriteAt("a", []byte("mine"), 0)
	require.NoError(t, err)
	op := startUpload(t, l, "c")
	res, err := l.Apply("c", syncrule.UploadFailed{Gen: op.Gen, Conflict: true, Remote: v2, RemoteSize: 6}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.NotEmpty(t, res.LostFound)
	require.Equal(t, "mine", readFile(t, l, res.LostFound))
	require.Equal(t, "mine", readFile(t, l, "a"))
	require.NotEqual(t, id, mustStat(t, l, res.LostFound).ID)
	require.EqualValues(t, 1, mustStat(t, l, "a").Nlink)
	// The copy is its own file.
	_, err = l.WriteAt("a", []byte("MINE"), 0)
	require.NoError(t, err)
	require.Equal(t, "mine", readFile(t, l, res.LostFound))
	_, err = os.Stat(l.dataPath(id))
	require.NoError(t, err)
}

func mustStat(t *testing.T, l *Layer, path string) Info {
	t.Helper()
	require.NoError(t, checkIndexes(l))
	info, err := l.Stat(path)
	require.NoError(t, err)
	return info
}

func TestDirectoryLinkCountCountsSubdirectories(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)
	require.EqualValues(t, 2, mustStat(t, l, "d").Nlink)
	for _, p := range []string{"d/a", "d/b"} {
		_, err := l.Mkdir(p, 0o755, 0, 0)
		require.NoError(t, err)
	}
	writeFile(t, l, "d/f", "files do not count")
	require.EqualValues(t, 4, mustStat(t, l, "d").Nlink)
	require.EqualValues(t, 3, mustStat(t, l, "").Nlink)
	require.NoError(t, l.Rmdir("d/a"))
	require.NoError(t, l.Rename("d/b", "b"))
	require.EqualValues(t, 2, mustStat(t, l, "d").Nlink)
	require.EqualValues(t, 4, mustStat(t, l, "").Nlink)
}

func TestFormat1SyncDirIsUpgraded(t *testing.T) {
	l, _ := newLayer(t)
	for _, p := range []string{"d", "d/a", "d/b", "d/b/c"} {
		_, err := l.Mkdir(p, 0o755, 0, 0)
		require.NoError(t, err)
	}
	// A sync dir of format 1 has no such bucket, or a stale one if a format-1 binary ran on
	// it since: the index is made afresh, and the format raised so that such a binary refuses.
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bMeta).Put(kFormat, []byte("1")); err != nil {
			return err
		}
		return tx.Bucket(bDirs).Put(nodeKey("d/gone"), []byte{})
	}))
	l = reopen(t, l)
	require.NoError(t, l.db.View(func(tx *bolt.Tx) error {
		require.Equal(t, formatVersion, string(tx.Bucket(bMeta).Get(kFormat)))
		return nil
	}))
	require.EqualValues(t, 4, mustStat(t, l, "d").Nlink)
	require.EqualValues(t, 3, mustStat(t, l, "d/b").Nlink)
	require.EqualValues(t, 3, mustStat(t, l, "").Nlink)
}

func TestNewerFormatIsRefused(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(kFormat, []byte("4")) }))
	require.NoError(t, l.Close())
	_, err := Open(l.dir, l.opts)
	require.ErrorIs(t, err, ErrCorrupt)
}

// Recovery can find one name's data missing (its record then says NoData, and keeps the id);
// the bytes fetched for it are its own, never put over the data its other names use.
func TestFetchForOneNameOfALinkedFileIsItsOwn(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "ours")
	link(t, l, "a", "b")
	upload(t, l, "a")
	upload(t, l, "b")
	_, err := l.WriteAt("a", []byte("OURS, dirty"), 0)
	require.NoError(t, err)
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		r, err := getRec(tx, "b")
		if err != nil {
			return err
		}
		r.State.Data = syncrule.NoData
		r.State.Base, r.State.Size = syncrule.Version{ETag: "etag-b"}, 5
		r.State.CleanGen, r.State.ContentGen = r.State.Gen, r.State.Gen
		r.State.DirtySince = time.Time{}
		return putRec(tx, "b", r)
	}))
	require.NoError(t, l.PutData("b", syncrule.Version{ETag: "etag-b"}, stringReader("their")))
	require.Equal(t, "their", readFile(t, l, "b"))
	require.Equal(t, "OURS, dirty", readFile(t, l, "a"))
	require.NotEqual(t, mustStat(t, l, "a").ID, mustStat(t, l, "b").ID)
	require.EqualValues(t, 1, mustStat(t, l, "a").Nlink)
}
