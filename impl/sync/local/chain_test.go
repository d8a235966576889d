package local

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// mv a b; mv b c before the copy a->b ran: the copy b->c is chained to it and learns its base
// from CopyDone; c starts no upload meanwhile.
func TestRenameChainIsChainedToTheFirstCopy(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "A")
	upload(t, l, "a")
	require.NoError(t, l.Rename("a", "b"))
	require.NoError(t, l.Rename("b", "c"))
	ops, err := l.Pending()
	require.NoError(t, err)
	require.Len(t, ops, 2)
	require.Equal(t, "pre/a", ops[0].Key)
	require.Equal(t, "pre/b", ops[0].DstKey)
	require.Equal(t, "pre/b", ops[1].Key)
	require.Equal(t, "pre/c", ops[1].DstKey)
	require.Equal(t, ops[0].ID, ops[1].ChainOf)
	require.True(t, ops[1].Base.IsZero())

	res, err := l.Apply("c", syncrule.Flush{}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Empty(t, res.Ops, "no upload races the copy that makes c")

	clean, err := l.CopyDone(ops[0], syncrule.Version{ETag: "b1"})
	require.NoError(t, err)
	require.False(t, clean)
	require.NoError(t, l.Done(ops[0].ID))
	op, ok, err := l.Op(ops[1].ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "b1", op.Base.ETag)

	clean, err = l.CopyDone(op, syncrule.Version{ETag: "c1"})
	require.NoError(t, err)
	require.True(t, clean, "c is what the copy made")
	require.NoError(t, l.Done(op.ID))
	require.Empty(t, dirtyPaths(t, l))
	info, _ := l.Stat("c")
	require.Equal(t, "c1", info.State.Base.ETag)
}

// Removing the destination of a copy not recorded yet owes the delete of what it makes.
func TestRemoveAfterRenameOwesChainedDelete(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "A")
	upload(t, l, "a")
	require.NoError(t, l.Rename("a", "b"))
	require.NoError(t, l.Remove("b"))
	ops, _ := l.Pending()
	require.Len(t, ops, 2)
	require.Equal(t, OpDelete, ops[1].Kind)
	require.Equal(t, "pre/b", ops[1].Key)
	require.Equal(t, ops[0].ID, ops[1].ChainOf)
	require.Empty(t, dirtyPaths(t, l), "no tombstone: the delete is of the copy's version, not b's old base")
	_, err := l.CopyDone(ops[0], syncrule.Version{ETag: "b1"})
	require.NoError(t, err)
	op, _, _ := l.Op(ops[1].ID)
	require.Equal(t, "b1", op.Base.ETag)
}

// A metadata-only file renamed with an attribute change in between never owes a PUT.
func TestRenameOfMetadataOnlyFileOwesNoPut(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{{Name: "a", Kind: KindFile, Version: v("a1"), Size: 5}}))
	require.NoError(t, l.Rename("a", "b"))
	require.NoError(t, l.Chmod("b", 0o600))
	require.NoError(t, l.Rename("b", "c"))
	ops, _ := l.Pending()
	require.Len(t, ops, 2)
	_, err := l.CopyDone(ops[0], syncrule.Version{ETag: "b1"})
	require.NoError(t, err)
	require.NoError(t, l.Done(ops[0].ID))
	op, _, _ := l.Op(ops[1].ID)
	_, err = l.CopyDone(op, syncrule.Version{ETag: "c1"})
	require.NoError(t, err)
	require.NoError(t, l.Done(op.ID))
	res, err := l.Apply("c", syncrule.Flush{}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Len(t, res.Ops, 1)
	require.True(t, res.Ops[0].MetadataOnly, "only the chmod is owed, as a copy onto itself")
	require.Equal(t, "c1", res.Ops[0].Base.ETag)
}

// The listing of a directory that shows its own marker gives the directory its base.
func TestImportDirMarkerIsTheBase(t *testing.T) {
	l, _ := newLayer(t)
	require.NoError(t, l.ImportListing("", []Remote{{Name: "d", Kind: KindDir}, {Name: "e", Kind: KindDir}}))
	require.NoError(t, l.ImportDir("d", v("m1"), []Remote{{Name: "x", Kind: KindFile, Version: v("x1"), Size: 1}}))
	require.NoError(t, l.ImportDir("e", syncrule.Version{}, nil))
	d, _ := l.Stat("d")
	require.Equal(t, "m1", d.State.Base.ETag)
	require.True(t, d.AttrPending)
	require.False(t, d.State.Dirty())
	pending, _ := l.AttrPending()
	require.Equal(t, []string{"d", "x"}[0], pending[0].Path)
	require.NoError(t, l.SetRemoteAttr("d", v("m1"), Attr{Mode: 0o700, UID: 3, GID: 4}, KindDir, ""))
	d, _ = l.Stat("d")
	require.EqualValues(t, 0o700, d.Attr.Mode)
	require.False(t, d.AttrPending)

	// chmod: a copy onto the marker; rmdir: its delete; rename: its copy+delete.
	require.NoError(t, l.Chmod("d", 0o750))
	res, err := l.Apply("d", syncrule.Flush{}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Len(t, res.Ops, 1)
	require.False(t, res.Ops[0].IfNoneMatch)
	require.True(t, res.Ops[0].MetadataOnly)
	require.Equal(t, "pre/d/", res.Ops[0].Key)

	require.NoError(t, l.Rename("e", "f"))
	ops, _ := l.Pending()
	require.Len(t, ops, 1, "e has no marker: nothing to move")
	require.NoError(t, l.Remove("d/x"))
	require.NoError(t, l.Rmdir("d"))
	info, err := l.Dirty()
	require.NoError(t, err)
	var tomb []string
	for _, i := range info {
		if i.State.Deleted {
			tomb = append(tomb, i.Path)
		}
	}
	require.Equal(t, []string{"d", "d/x"}, tomb, "the marker's delete is owed")
}
