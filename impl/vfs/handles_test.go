package vfs

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

func TestHandlesAreNeverReused(t *testing.T) {
	var hs Handles
	a := hs.Add("a")
	b := hs.Add(1)
	require.NotZero(t, a)
	require.NotEqual(t, a, b)
	require.Equal(t, "a", hs.Remove(a))
	require.Nil(t, hs.Get(a))
	require.NotEqual(t, a, hs.Add("c"), "a closed handle's number came back")

	n, err := HandleOf[int](&hs, b, "read")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = HandleOf[string](&hs, b, "write")
	require.Equal(t, CodeBadHandle, CodeOf(err), "a handle of another type")
	_, err = HandleOf[string](&hs, a, "write")
	require.Equal(t, CodeBadHandle, CodeOf(err), "a closed handle")
}

// A directory is listed at offset 0 only: a read that goes on from an offset gets the rest of
// the same listing, however the directory changed.
func TestDirHandleKeepsItsListingUntilRewound(t *testing.T) {
	d := &DirHandle{Inode: 5, Path: "d"}
	calls := 0
	names := []string{"a", "b", "c"}
	list := func() (Listing, error) {
		calls++
		var l Listing
		l.Parent = RootID
		for _, n := range names {
			l.Children = append(l.Children, DirEntry{Inode: InodeID(10 + len(l.Children)), Name: n, Kind: keymap.File})
		}
		return l, nil
	}
	first, err := d.Read(context.Background(), 0, list)
	require.NoError(t, err)
	require.Len(t, first, 5)
	require.Equal(t, DirEntry{Offset: 1, Inode: 5, Name: ".", Kind: keymap.Dir}, first[0])
	require.Equal(t, DirEntry{Offset: 2, Inode: RootID, Name: "..", Kind: keymap.Dir}, first[1])
	for i, e := range first {
		require.Equal(t, uint64(i+1), e.Offset)
	}

	names = []string{"z"} // the directory changes between two reads of one pass
	rest, err := d.Read(context.Background(), 3, list)
	require.NoError(t, err)
	require.Equal(t, first[3:], rest)
	end, err := d.Read(context.Background(), 5, list)
	require.NoError(t, err)
	require.Empty(t, end)
	require.Equal(t, 1, calls)

	again, err := d.Read(context.Background(), 0, list) // rewinddir
	require.NoError(t, err)
	require.Equal(t, 2, calls)
	require.Equal(t, "z", again[2].Name)

	failing := &DirHandle{Inode: 6}
	_, err = failing.Read(context.Background(), 0, func() (Listing, error) { return Listing{}, errors.New("store down") })
	require.Error(t, err)
}

// A listing that comes in parts is read part by part as reads reach its end, numbered on from
// where the previous part ended; a failed part is asked for again by the next read, and an
// empty part is read past.
func TestDirHandleReadsAListingInParts(t *testing.T) {
	d := &DirHandle{Inode: 5}
	type part struct {
		names []string
		err   error
	}
	parts := []part{{names: []string{"a", "b"}}, {err: errors.New("store down")}, {}, {names: []string{"c"}}}
	more := func(context.Context) ([]DirEntry, bool, error) {
		p := parts[0]
		parts = parts[1:]
		var es []DirEntry
		for _, n := range p.names {
			es = append(es, DirEntry{Name: n, Kind: keymap.File})
		}
		return es, len(parts) == 0, p.err
	}
	list := func() (Listing, error) {
		return Listing{Parent: RootID, Children: []DirEntry{{Name: "a0", Kind: keymap.File}}, More: more}, nil
	}
	ctx := context.Background()
	first, err := d.Read(ctx, 0, list)
	require.NoError(t, err)
	require.Len(t, first, 3, "the first part only: ., .. and a0")
	rest, err := d.Read(ctx, 3, list)
	require.NoError(t, err)
	var names []string
	for i, e := range rest {
		require.Equal(t, uint64(4+i), e.Offset)
		names = append(names, e.Name)
	}
	require.Equal(t, []string{"a", "b"}, names)
	_, err = d.Read(ctx, 5, list)
	require.Error(t, err)
	last, err := d.Read(ctx, 5, list)
	require.NoError(t, err)
	require.Len(t, last, 1)
	require.Equal(t, DirEntry{Offset: 6, Name: "c", Kind: keymap.File}, last[0])
	end, err := d.Read(ctx, 6, list)
	require.NoError(t, err)
	require.Empty(t, end)
	require.Empty(t, parts)
}

func TestLookupsNeverGoBelowZero(t *testing.T) {
	var l Lookups
	l.Add()
	l.Add()
	require.False(t, l.Forget(1))
	require.True(t, l.Forget(5))
	require.Zero(t, l)
}
