package local

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// A poll that listed a directory before a local delete reached the bucket must not bring the
// file back once the delete's tombstone is gone (crash cycles: `rm -r` of a directory failed
// with ENOTEMPTY because a poll had re-imported names it had just deleted).
func TestObservedRemovalIsNotImportedAgain(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Mkdir("d", 0o755, 1, 2)
	require.NoError(t, err)
	for _, p := range []string{"d/a", "d/b"} {
		writeFile(t, l, p, "x")
		require.True(t, upload(t, l, p))
	}
	deleted := func(p string) {
		require.NoError(t, l.Remove(p))
		a, err := l.Apply(p, syncrule.Flush{Now: time.Now()}, syncrule.DefaultParams())
		require.NoError(t, err)
		require.Len(t, a.Ops, 1)
		_, err = l.Apply(p, syncrule.DeleteSucceeded{Gen: a.Ops[0].Gen}, syncrule.DefaultParams())
		require.NoError(t, err)
		require.NoError(t, l.Done(a.Ops[0].ID))
		_, err = l.Stat(p)
		require.ErrorIs(t, err, ErrNotFound)
	}

	end := l.Observe("d")
	// What the watcher saw: both objects, listed before the deletes reached the bucket.
	seen := []Remote{{Name: "a", Kind: KindFile, Version: v("etag-d/a"), Size: 1}, {Name: "b", Kind: KindFile, Version: v("etag-d/b"), Size: 1}}
	deleted("d/a")
	deleted("d/b")
	require.NoError(t, l.ImportDir("d", syncrule.Version{}, seen[:1]))
	_, err = l.ApplyRemote("d/b", KindFile, syncrule.RemoteChanged{Version: v("etag-d/b"), Size: 1}, syncrule.DefaultParams())
	require.NoError(t, err)
	ls, err := l.List("d")
	require.NoError(t, err)
	require.Empty(t, ls, "a stale sighting brought back a deleted name")
	require.NoError(t, l.Rmdir("d"), "rm -r must be able to finish")
	end()

	// Outside an observation, a name is new when a listing says so (another writer made it).
	_, err = l.Mkdir("e", 0o755, 1, 2)
	require.NoError(t, err)
	writeFile(t, l, "e/a", "x")
	require.True(t, upload(t, l, "e/a"))
	end = l.Observe("e")
	deleted("e/a")
	end()
	require.NoError(t, l.ImportDir("e", syncrule.Version{}, []Remote{{Name: "a", Kind: KindFile, Version: v("other"), Size: 3}}))
	info, err := l.Stat("e/a")
	require.NoError(t, err, "an observation that ended holds nothing back")
	require.Equal(t, "other", info.State.Base.ETag)
}

// Records decoded from the same bytes come from a cache; each caller gets its own copy.
func TestDecodedRecordsAreCopies(t *testing.T) {
	r := &record{Kind: KindFile, Attr: Attr{Mode: 0o644, Xattrs: map[string][]byte{"user.a": []byte("1")}}}
	r.State.Exists = true
	v, err := json.Marshal(r)
	require.NoError(t, err)
	a, err := decodeRec("p", v)
	require.NoError(t, err)
	a.Attr.Xattrs["user.a"][0] = '2'
	a.Attr.Xattrs["user.b"] = nil
	a.Attr.Mode = 0o600
	b, err := decodeRec("p", v)
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"user.a": []byte("1")}, b.Attr.Xattrs)
	require.Equal(t, uint32(0o644), b.Attr.Mode)
}
