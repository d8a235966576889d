package local

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func v(etag string) syncrule.Version { return syncrule.Version{ETag: etag} }

func TestImportListingCreatesCleanMetadataOnlyRecords(t *testing.T) {
	l, _ := newLayer(t)
	imp, err := l.Imported("")
	require.NoError(t, err)
	require.False(t, imp, "a new sync dir has imported nothing")

	require.NoError(t, l.ImportListing("", []Remote{
		{Name: "a.txt", Kind: KindFile, Version: v(`"e1"`), Size: 5, Mtime: t0},
		{Name: "d", Kind: KindDir},
		{Name: "empty", Kind: KindFile, Version: v(`"e0"`), Size: 0, Mtime: t0},
	}))
	imp, err = l.Imported("")
	require.NoError(t, err)
	require.True(t, imp)

	f, err := l.Stat("a.txt")
	require.NoError(t, err)
	require.Equal(t, KindFile, f.Kind)
	require.True(t, f.State.Exists)
	require.Equal(t, syncrule.NoData, f.State.Data)
	require.Equal(t, v(`"e1"`), f.State.Base)
	require.False(t, f.State.Dirty())
	require.EqualValues(t, 5, f.Size)
	require.Equal(t, Attr{Mode: 0o644, UID: 1000, GID: 1000, Mtime: t0}, f.Attr, "S9 defaults, Last-Modified as mtime")
	require.True(t, f.AttrPending)
	require.Zero(t, f.ID, "no data file until the data is fetched")
	require.NoError(t, f.State.Validate())

	d, err := l.Stat("d")
	require.NoError(t, err)
	require.Equal(t, KindDir, d.Kind)
	require.False(t, d.State.Dirty())
	require.True(t, d.State.Base.IsZero())
	require.EqualValues(t, 0o755, d.Attr.Mode)
	require.False(t, d.Imported, "a subdirectory is imported on its own first access")
	require.False(t, d.AttrPending)

	_, err = l.ReadAt("a.txt", make([]byte, 5), 0)
	require.ErrorIs(t, err, ErrNoData)
	require.Empty(t, dirtyPaths(t, l), "an import owes the bucket nothing")
	ops, err := l.Pending()
	require.NoError(t, err)
	require.Empty(t, ops)
	require.Equal(t, []string{"a.txt", "d", "empty"}, names(mustList(t, l, "")))

	// The data arrives, and survives a restart like any clean data.
	require.NoError(t, l.PutData("a.txt", v(`"e1"`), stringReader("hello")))
	require.NoError(t, l.PutData("empty", v(`"e0"`), stringReader("")))
	l = reopen(t, l)
	require.Equal(t, "hello", readFile(t, l, "a.txt"))
	imp, err = l.Imported("")
	require.NoError(t, err)
	require.True(t, imp, "imported is durable")
	fi, err := l.Stat("empty")
	require.NoError(t, err)
	require.Equal(t, syncrule.LocalData, fi.State.Data)
}

func mustList(t *testing.T, l *Layer, dir string) []Info {
	t.Helper()
	out, err := l.List(dir)
	require.NoError(t, err)
	return out
}

func TestImportListingLeavesExistingRecordsAlone(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "dirty", "local bytes")
	writeFile(t, l, "gone", "x")
	upload(t, l, "gone")
	require.NoError(t, l.Remove("gone")) // a tombstone: the delete is owed
	_, err := l.Mkdir("d", 0o700, 1, 2)
	require.NoError(t, err)

	require.NoError(t, l.ImportListing("", []Remote{
		{Name: "dirty", Kind: KindFile, Version: v("other"), Size: 99},
		{Name: "gone", Kind: KindFile, Version: v("etag-gone"), Size: 1},
		{Name: "d", Kind: KindFile, Version: v("f"), Size: 1},
	}))
	info, err := l.Stat("dirty")
	require.NoError(t, err)
	require.True(t, info.State.Dirty())
	require.Equal(t, "local bytes", readFile(t, l, "dirty"))
	_, err = l.Stat("gone")
	require.ErrorIs(t, err, ErrNotFound, "a local delete is not undone by an import")
	d, err := l.Stat("d")
	require.NoError(t, err)
	require.Equal(t, KindDir, d.Kind)
	require.EqualValues(t, 0o700, d.Attr.Mode)
	require.Equal(t, []string{"d", "dirty", "gone"}, dirtyPaths(t, l))
}

func TestImportListingRefusesBadInput(t *testing.T) {
	l, _ := newLayer(t)
	for _, e := range []Remote{
		{Name: "a/b", Kind: KindFile, Version: v("e")},
		{Name: "..", Kind: KindDir},
		{Name: "", Kind: KindDir},
		{Name: "novers", Kind: KindFile},
		{Name: "link", Kind: KindSymlink, Version: v("e")},
	} {
		err := l.ImportListing("", []Remote{{Name: "ok", Kind: KindDir}, e})
		require.ErrorIs(t, err, ErrInvalid, "%+v", e)
	}
	_, err := l.Stat("ok")
	require.ErrorIs(t, err, ErrNotFound, "one transaction: nothing of a refused listing is kept")
	imp, _ := l.Imported("")
	require.False(t, imp)

	require.ErrorIs(t, l.ImportListing("missing", nil), ErrNotFound)
	writeFile(t, l, "f", "x")
	require.ErrorIs(t, l.ImportListing("f", nil), ErrNotDir)
	_, err = l.Imported("f")
	require.ErrorIs(t, err, ErrNotDir)
}

func TestImportListingSkipsLostFound(t *testing.T) {
	l, _ := newLayer(t)
	lf := syncrule.LostFoundDir(l.FSID())
	require.NoError(t, l.ImportListing("", []Remote{{Name: lf, Kind: KindDir}, {Name: "x", Kind: KindDir}}))
	_, err := l.Stat(lf)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestNestedImportAndMkdir(t *testing.T) {
	l, _ := newLayer(t)
	// Before the root is imported, a new directory's key may hide objects.
	_, err := l.Mkdir("early", 0o755, 0, 0)
	require.NoError(t, err)
	info, _ := l.Stat("early")
	require.False(t, info.Imported)

	require.NoError(t, l.ImportListing("", []Remote{{Name: "d", Kind: KindDir}}))
	require.NoError(t, l.ImportListing("d", []Remote{{Name: "e", Kind: KindDir}, {Name: "f", Kind: KindFile, Version: v("x"), Size: 1}}))
	for dir, want := range map[string]bool{"": true, "d": true, "d/e": false} {
		imp, err := l.Imported(dir)
		require.NoError(t, err)
		require.Equal(t, want, imp, dir)
	}
	_, err = l.Mkdir("d/new", 0o755, 0, 0)
	require.NoError(t, err)
	imp, err := l.Imported("d/new")
	require.NoError(t, err)
	require.True(t, imp, "made under an imported parent: nothing in the bucket under it")
	_, err = l.Mkdir("d/e/new", 0o755, 0, 0)
	require.NoError(t, err)
	imp, _ = l.Imported("d/e/new")
	require.False(t, imp)

	// A rename carries the flag with the directory.
	require.NoError(t, l.Rename("d", "d2"))
	imp, err = l.Imported("d2")
	require.NoError(t, err)
	require.True(t, imp)
}

func TestSetRemoteAttr(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{
		{Name: "f", Kind: KindFile, Version: v("e1"), Size: 3, Mtime: t0},
		{Name: "g", Kind: KindFile, Version: v("e2"), Size: 3, Mtime: t0},
	}))
	a := Attr{Mode: 0o100640, UID: 7, GID: 8, Mtime: t0.Add(time.Hour)}
	require.NoError(t, l.SetRemoteAttr("f", syncrule.Version{ETag: "e1", VersionID: "v1"}, a, KindFile, ""))
	info, err := l.Stat("f")
	require.NoError(t, err)
	require.Equal(t, Attr{Mode: 0o640, UID: 7, GID: 8, Mtime: t0.Add(time.Hour)}, info.Attr, "type bits are not kept")
	require.False(t, info.AttrPending)
	require.False(t, info.State.Dirty(), "the bucket's attributes are no local change")
	require.Empty(t, dirtyPaths(t, l))

	// Stale results are ignored: another version, a dirty file, a missing one, a directory.
	require.NoError(t, l.SetRemoteAttr("g", v("old"), Attr{Mode: 0o600}, KindFile, ""))
	info, _ = l.Stat("g")
	require.EqualValues(t, 0o644, info.Attr.Mode)
	require.True(t, info.AttrPending)
	require.NoError(t, l.PutData("g", v("e2"), stringReader("abc")))
	require.NoError(t, l.Chmod("g", 0o444))
	require.NoError(t, l.SetRemoteAttr("g", v("e2"), Attr{Mode: 0o600}, KindFile, ""))
	info, _ = l.Stat("g")
	require.EqualValues(t, 0o444, info.Attr.Mode, "a local change wins over what the import read")
	require.NoError(t, l.SetRemoteAttr("nope", v("e"), Attr{}, KindFile, ""))
	require.NoError(t, l.SetRemoteAttr("", v("e"), Attr{}, KindFile, ""))

	require.ErrorIs(t, l.SetRemoteAttr("f", v("e1"), Attr{}, KindDir, ""), ErrInvalid)
	require.ErrorIs(t, l.SetRemoteAttr("f", syncrule.Version{}, Attr{}, KindFile, ""), ErrInvalid)
}

func TestSetRemoteAttrMakesSymlink(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{
		{Name: "l1", Kind: KindFile, Version: v("e1"), Size: 6},
		{Name: "l2", Kind: KindFile, Version: v("e2"), Size: 6},
	}))
	a := Attr{Mode: 0o777, UID: 1, GID: 2, Mtime: t0}
	require.ErrorIs(t, l.SetRemoteAttr("l1", v("e1"), a, KindSymlink, "short"), ErrInvalid, "not the object's body")
	require.NoError(t, l.SetRemoteAttr("l1", v("e1"), a, KindSymlink, "target"))
	info, err := l.Stat("l1")
	require.NoError(t, err)
	require.Equal(t, KindSymlink, info.Kind)
	require.Equal(t, "target", info.Target)
	require.EqualValues(t, 6, info.Size)
	require.False(t, info.State.Dirty())
	require.NoError(t, info.State.Validate())
	got, err := l.Readlink("l1")
	require.NoError(t, err)
	require.Equal(t, "target", got)
	require.ErrorIs(t, l.SetRemoteAttr("l1", v("e1"), a, KindFile, ""), ErrInvalid)

	// Data fetched before the metadata said symlink is dropped after the commit.
	require.NoError(t, l.PutData("l2", v("e2"), stringReader("../etc")))
	f, _ := l.Stat("l2")
	require.NotZero(t, f.ID)
	require.FileExists(t, l.dataPath(f.ID))
	require.NoError(t, l.SetRemoteAttr("l2", v("e2"), a, KindSymlink, "../etc"))
	_, err = os.Stat(l.dataPath(f.ID))
	require.True(t, errors.Is(err, os.ErrNotExist))

	l = reopen(t, l)
	got, err = l.Readlink("l2")
	require.NoError(t, err)
	require.Equal(t, "../etc", got)
}

func TestAttrPendingSurvivesRestart(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{
		{Name: "a", Kind: KindFile, Version: v("a"), Size: 1},
		{Name: "b", Kind: KindFile, Version: v("b"), Size: 1},
		{Name: "d", Kind: KindDir},
	}))
	require.NoError(t, l.SetRemoteAttr("a", v("a"), Attr{Mode: 0o600}, KindFile, ""))
	l = reopen(t, l)
	p, err := l.AttrPending()
	require.NoError(t, err)
	require.Equal(t, []string{"b"}, names(p))
}

// Records written before the import fields existed decode as "not imported, attributes known".
func TestRecordWithoutImportFieldsDecodes(t *testing.T) {
	old := `{"k":2,"a":{"Mode":493,"UID":0,"GID":0,"Mtime":"2025-01-01T00:00:00Z"},"s":{"Exists":true}}`
	r, err := decodeRec("d", []byte(old))
	require.NoError(t, err)
	require.False(t, r.Imported)
	require.False(t, r.AttrPending)
	b, err := json.Marshal(&record{Kind: KindDir, State: syncrule.State{Exists: true}})
	require.NoError(t, err)
	require.NotContains(t, string(b), `"i"`, "false is not written, so old readers see the same record")
}

func TestTouch(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{{Name: "f", Kind: KindFile, Version: v("e"), Size: 1}}))
	require.NoError(t, l.Touch("f", t0), "no local data: nothing to record")
	require.Zero(t, committed(t, l, "f").State.LastUsed)
	require.NoError(t, l.PutData("f", v("e"), stringReader("x")))
	imported := committed(t, l, "f").State.LastUsed
	require.False(t, imported.IsZero())

	require.NoError(t, l.Touch("f", imported.Add(30*time.Second)))
	require.Equal(t, imported, committed(t, l, "f").State.LastUsed, "within the resolution: no commit")

	later := imported.Add(2 * time.Hour)
	require.NoError(t, l.Touch("f", later))
	require.Equal(t, later, committed(t, l, "f").State.LastUsed)
	require.NoError(t, l.Touch("f", imported), "an older read never moves last use back")
	require.Equal(t, later, committed(t, l, "f").State.LastUsed)
	require.Empty(t, dirtyPaths(t, l))

	// Expiry counts from the read: the rule at later+ExpireAfter-1s keeps it.
	s := committed(t, l, "f").State
	p := syncrule.Params{ExpireAfter: 24 * time.Hour}
	require.False(t, syncrule.MayExpire(s, later.Add(p.ExpireAfter-time.Second), p))
	require.True(t, syncrule.MayExpire(s, later.Add(p.ExpireAfter), p))

	require.NoError(t, l.Touch("missing", later), "nothing to record for a path with no file")
}

// SetRemoteAttrs applies each entry as SetRemoteAttr would, in one transaction: stale and
// invalid entries are skipped without spoiling the others.
func TestSetRemoteAttrsBatch(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{
		{Name: "a", Kind: KindFile, Version: v("ea"), Size: 1, Mtime: t0},
		{Name: "b", Kind: KindFile, Version: v("eb"), Size: 1, Mtime: t0},
		{Name: "c", Kind: KindFile, Version: v("ec"), Size: 1, Mtime: t0},
	}))
	require.NoError(t, l.SetRemoteAttrs([]RemoteAttr{
		{Path: "a", Version: v("ea"), Attr: Attr{Mode: 0o100755, UID: 5, Mtime: t0}, Kind: KindFile},
		{Path: "b", Version: v("stale"), Attr: Attr{Mode: 0o600, Mtime: t0}, Kind: KindFile},
		{Path: "c", Version: v("ec"), Attr: Attr{Mode: 0o700, Mtime: t0}, Kind: KindDir}, // a file is no marker
		{Path: "gone", Version: v("e"), Attr: Attr{Mode: 0o600}, Kind: KindFile},
	}))
	info, err := l.Stat("a")
	require.NoError(t, err)
	require.Equal(t, Attr{Mode: 0o755, UID: 5, Mtime: t0}, info.Attr)
	require.False(t, info.AttrPending)
	for _, p := range []string{"b", "c"} {
		info, err := l.Stat(p)
		require.NoError(t, err)
		require.True(t, info.AttrPending, p)
		require.EqualValues(t, 0o644, info.Attr.Mode, p)
	}
	require.Empty(t, dirtyPaths(t, l))
}

// A read recorded with TouchLater reaches the record in the background, and postpones expiry
// even when the expirer runs right after it.
func TestTouchLater(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{{Name: "f", Kind: KindFile, Version: v("e"), Size: 1}}))
	require.NoError(t, l.PutData("f", v("e"), stringReader("x")))
	imported := committed(t, l, "f").State.LastUsed

	later := imported.Add(2 * time.Hour)
	require.NoError(t, l.TouchLater("f", later))
	require.Eventually(t, func() bool { return committed(t, l, "f").State.LastUsed.Equal(later) }, 10*time.Second, time.Millisecond)

	last := later.Add(2 * time.Hour)
	require.NoError(t, l.TouchLater("f", last))
	p := syncrule.Params{ExpireAfter: time.Hour}
	n, _, err := l.ExpireUnused(last.Add(30*time.Minute), p)
	require.NoError(t, err)
	require.Zero(t, n, "read 30 min ago: kept, whether or not the background had recorded the read")
	require.Equal(t, last, committed(t, l, "f").State.LastUsed)
	require.NoError(t, l.TouchLater("missing", last), "nothing to record for a path with no file")
}

// LookupIn answers a lookup and whether the directory is imported, as Lookup and Imported do
// one after the other.
func TestLookupInSaysWhetherTheDirectoryIsImported(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "local", "x")
	info, imported, err := l.LookupIn("", "local")
	require.NoError(t, err)
	require.False(t, imported)
	require.Equal(t, int64(1), info.Size)

	require.NoError(t, l.ImportListing("", []Remote{{Name: "d", Kind: KindDir}, {Name: "a", Kind: KindFile, Version: v(`"e1"`), Size: 5, Mtime: t0}}))
	info, imported, err = l.LookupIn("", "a")
	require.NoError(t, err)
	require.True(t, imported)
	require.Equal(t, int64(5), info.Size)
	_, imported, err = l.LookupIn("", "missing")
	require.ErrorIs(t, err, ErrNotFound)
	require.True(t, imported, "an imported directory's absent name is settled")

	_, imported, err = l.LookupIn("d", "x")
	require.ErrorIs(t, err, ErrNotFound)
	require.False(t, imported, "d's own listing is not in yet")
	_, _, err = l.LookupIn("a", "x")
	require.Error(t, err, "a file has no entries")
	_, _, err = l.LookupIn("", "bad/name")
	require.ErrorIs(t, err, ErrNotFound)
}
