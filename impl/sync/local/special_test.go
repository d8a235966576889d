package local

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/spec/posixmeta"
)

func TestMknodKeepsKindModeAndDevice(t *testing.T) {
	l, _ := newLayer(t)
	for _, c := range []struct {
		path string
		kind Kind
		rdev uint32
	}{{"p", KindFIFO, 0}, {"c", KindCharDevice, 0x0401}, {"b", KindBlockDevice, 0x0811}, {"s", KindSocket, 0}} {
		info, err := l.Mknod(c.path, c.kind, 0o640, c.rdev, 7, 8)
		require.NoError(t, err, c.path)
		require.Equal(t, c.kind, info.Kind)
		require.Zero(t, info.ID, "no data file")
		require.True(t, info.State.Dirty(), "its object is owed")
	}
	_, err := l.Mknod("p", KindFIFO, 0o644, 0, 0, 0)
	require.ErrorIs(t, err, ErrExists)
	_, err = l.Mknod("f", KindFile, 0o644, 0, 0, 0)
	require.ErrorIs(t, err, ErrInvalid, "Mknod makes special files only")
	_, err = l.Mknod("q", KindFIFO, 0o644, 99, 0, 0)
	require.NoError(t, err)

	l = reopen(t, l)
	for path, want := range map[string]Attr{"p": {Mode: 0o640, UID: 7, GID: 8}, "c": {Mode: 0o640, UID: 7, GID: 8, Rdev: 0x0401},
		"b": {Mode: 0o640, UID: 7, GID: 8, Rdev: 0x0811}, "q": {Mode: 0o644}} {
		info, err := l.Stat(path)
		require.NoError(t, err)
		require.Equal(t, want.Mode, info.Attr.Mode, path)
		require.Equal(t, want.Rdev, info.Attr.Rdev, "%s: only devices keep a number", path)
		require.Zero(t, info.Size)
	}
	require.NoError(t, l.Rename("c", "c2"))
	require.NoError(t, l.Chmod("c2", 0o600))
	require.NoError(t, l.Remove("p"))
	info, err := l.Stat("c2")
	require.NoError(t, err)
	require.Equal(t, KindCharDevice, info.Kind)
	require.Equal(t, uint32(0x0401), info.Attr.Rdev)
	m := posixmeta.Encode(Meta(info))
	require.Equal(t, "8576", m["mode"]) // 020600
	require.Equal(t, "1025", m["rdev"])
}

// An imported object whose metadata says FIFO becomes one; one that says file cannot be
// turned into one by a second read of the same version.
func TestSetRemoteAttrMakesSpecialFile(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{
		{Name: "p", Kind: KindFile, Version: v("e1"), Size: 0},
		{Name: "notempty", Kind: KindFile, Version: v("e2"), Size: 3},
	}))
	a := Attr{Mode: 0o600, Rdev: 5}
	require.NoError(t, l.SetRemoteAttr("p", v("e1"), a, KindFIFO, ""))
	info, err := l.Stat("p")
	require.NoError(t, err)
	require.Equal(t, KindFIFO, info.Kind)
	require.False(t, info.AttrPending)
	require.False(t, info.State.Dirty())
	require.ErrorIs(t, l.SetRemoteAttr("p", v("e1"), a, KindSocket, ""), ErrInvalid, "one version, two kinds")
	require.ErrorIs(t, l.SetRemoteAttr("notempty", v("e2"), a, KindFIFO, ""), ErrInvalid, "a special file's object is empty")
	l = reopen(t, l)
	info, err = l.Stat("p")
	require.NoError(t, err)
	require.Equal(t, KindFIFO, info.Kind)
}

func TestExtendedAttributes(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "x")
	require.NoError(t, l.SetXattr("f", "user.a", []byte("1"), 0))
	require.ErrorIs(t, l.SetXattr("f", "user.a", []byte("2"), XattrCreate), ErrExists)
	require.ErrorIs(t, l.SetXattr("f", "user.b", []byte("2"), XattrReplace), ErrNoAttr)
	require.NoError(t, l.SetXattr("f", "user.a", []byte("3"), XattrReplace))
	require.NoError(t, l.SetXattr("f", "user.b", nil, XattrCreate))
	require.ErrorIs(t, l.SetXattr("f", "user.big", make([]byte, 2000), 0), ErrNoSpace)
	require.ErrorIs(t, l.RemoveXattr("f", "user.none"), ErrNoAttr)
	before, _ := l.Stat("f")
	require.NoError(t, l.RemoveXattr("f", "user.b"))
	info, err := l.Stat("f")
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"user.a": []byte("3")}, info.Attr.Xattrs)
	require.True(t, info.Attr.ChangeTime().After(before.Attr.ChangeTime()), "ctime moves")
	require.True(t, info.State.Dirty(), "owed to the bucket with the metadata")

	// A refused change leaves unsynced writes to the close: their size still reaches the record.
	h, err := l.BeginWrite("f")
	require.NoError(t, err)
	_, err = h.WriteAt([]byte("longer"), 0)
	require.NoError(t, err)
	require.ErrorIs(t, l.SetXattr("f", "user.a", nil, XattrCreate), ErrExists)
	require.NoError(t, h.Close())
	l = reopen(t, l)
	info, err = l.Stat("f")
	require.NoError(t, err)
	require.EqualValues(t, 6, info.Size)
	require.Equal(t, map[string][]byte{"user.a": []byte("3")}, info.Attr.Xattrs)
}
