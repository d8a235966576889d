package local

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// committed reads the record as the last transaction left it (what a crash would leave).
func committed(t *testing.T, l *Layer, path string) *record {
	t.Helper()
	var r *record
	require.NoError(t, l.db.View(func(tx *bolt.Tx) (err error) {
		r, err = getRec(tx, path)
		return err
	}))
	return r
}

// Invariant 1: BeginWrite commits the intent before a handle (and so any data) exists.
func TestInv1IntentBeforeData(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "v1")
	upload(t, l, "f")
	require.False(t, committed(t, l, "f").State.Dirty())
	var seenDirty bool
	crashHook = func(point string) {
		if point == "begin-write-after-intent" {
			seenDirty = committed(t, l, "f").State.Dirty()
		}
	}
	defer func() { crashHook = func(string) {} }()
	h, err := l.BeginWrite("f")
	require.NoError(t, err)
	require.True(t, seenDirty, "dirty was committed before the handle was made")
	require.NoError(t, h.Close())
}

// Invariant 2: Sync fsyncs the data and then commits size and mtime.
func TestInv2SyncCommitsMetadata(t *testing.T) {
	l, _ := newLayer(t)
	_, _ = l.Create("f", 0o644, 0, 0)
	h, _ := l.BeginWrite("f")
	_, err := h.WriteAt([]byte("hello world"), 0)
	require.NoError(t, err)
	require.EqualValues(t, 0, committed(t, l, "f").State.Size, "not committed before sync")
	require.NoError(t, h.Sync())
	r := committed(t, l, "f")
	require.EqualValues(t, 11, r.State.Size)
	require.NoError(t, h.Close())
	l = reopen(t, l)
	require.Equal(t, "hello world", readFile(t, l, "f"))
}

// Invariant 3: a snapshot never changes, whatever is written after it.
func TestInv3SnapshotIsImmutable(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "hello")
	h, _ := l.BeginWrite("f")
	rc, gen, size, err := l.Snapshot("f")
	require.NoError(t, err)
	defer rc.Close()
	require.EqualValues(t, 5, size)
	_, err = h.WriteAt([]byte("XXXXXXXX world"), 0)
	require.NoError(t, err)
	require.NoError(t, h.Truncate(3))
	require.NoError(t, h.Close())
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
	info, _ := l.Stat("f")
	require.Greater(t, info.State.Gen, gen, "the write after the snapshot is a new generation")
	require.Equal(t, "XXX", readFile(t, l, "f"))
	// A snapshot taken while a handle has unsynced writes includes them, and commits them.
	h, _ = l.BeginWrite("f")
	_, _ = h.WriteAt([]byte("abcdef"), 0)
	rc2, _, size2, err := l.Snapshot("f")
	require.NoError(t, err)
	b, _ = io.ReadAll(rc2)
	rc2.Close()
	require.Equal(t, "abcdef", string(b))
	require.EqualValues(t, 6, size2)
	require.EqualValues(t, 6, committed(t, l, "f").State.Size)
	require.NoError(t, h.Close())
}

// Invariant 4: clean only if the uploaded generation is still the current one.
func TestInv4MarkUploadedOnlyIfUnchanged(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "v1")
	h, err := l.BeginWrite("f") // opened before the snapshot: the seal must catch its writes
	require.NoError(t, err)
	rc, gen, _, err := l.Snapshot("f")
	require.NoError(t, err)
	rc.Close()
	_, err = h.WriteAt([]byte("v2"), 0)
	require.NoError(t, err)
	clean, err := l.MarkUploaded("f", gen, syncrule.Version{ETag: "e1"})
	require.NoError(t, err)
	require.False(t, clean)
	r := committed(t, l, "f")
	require.True(t, r.State.Dirty())
	require.Equal(t, "e1", r.State.Base.ETag, "the new base is recorded in the same transaction")
	require.NoError(t, h.Close())

	rc, gen2, _, err := l.Snapshot("f")
	require.NoError(t, err)
	rc.Close()
	clean, err = l.MarkUploaded("f", gen2, syncrule.Version{ETag: "e2"})
	require.NoError(t, err)
	require.True(t, clean)
	clean, err = l.MarkUploaded("f", gen, syncrule.Version{ETag: "old"})
	require.NoError(t, err)
	require.True(t, clean)
	require.Equal(t, "e2", committed(t, l, "f").State.Base.ETag, "a stale result changes nothing")
}

// Invariant 4 through the rule: an upload started with Apply is finished by UploadSucceeded.
func TestInv4ThroughApply(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "v1")
	a, err := l.Apply("f", syncrule.Flush{}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Len(t, a.Ops, 1)
	require.True(t, a.Ops[0].IfNoneMatch)
	rc, gen, _, err := l.Snapshot("f")
	require.NoError(t, err)
	rc.Close()
	require.Equal(t, a.Ops[0].Gen, gen)
	clean, err := l.MarkUploaded("f", gen, syncrule.Version{ETag: "e"})
	require.NoError(t, err)
	require.True(t, clean)
	require.Equal(t, syncrule.OpNone, committed(t, l, "f").State.InFlight)
}

// Invariant 5: queued ops are durable before they are returned and survive a restart.
func TestInv5QueueDurable(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "x")
	a, err := l.Apply("f", syncrule.Flush{}, syncrule.DefaultParams())
	require.NoError(t, err)
	l = reopen(t, l)
	ops, err := l.Pending()
	require.NoError(t, err)
	require.Equal(t, a.Ops, ops)
	require.NoError(t, l.Done(ops[0].ID))
	require.NoError(t, l.Done(ops[0].ID))
	l = reopen(t, l)
	ops, _ = l.Pending()
	require.Empty(t, ops)
}

// Invariant 6: dirty data is never expired; clean data is, keeping its metadata.
func TestInv6ExpireOnlyClean(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "data")
	require.ErrorIs(t, l.Expire("f"), ErrDirty)
	require.Equal(t, "data", readFile(t, l, "f"))
	upload(t, l, "f")
	h, _ := l.BeginWrite("f")
	require.ErrorIs(t, l.Expire("f"), ErrBusy)
	require.NoError(t, h.Close())
	upload(t, l, "f")
	info, _ := l.Stat("f")
	require.NoError(t, l.Expire("f"))
	require.NoFileExists(t, l.dataPath(info.ID))
	after, err := l.Stat("f")
	require.NoError(t, err, "metadata stays")
	require.EqualValues(t, 4, after.Size)
	require.Equal(t, syncrule.ExpiredData, after.State.Data)
	_, err = l.ReadAt("f", make([]byte, 1), 0)
	require.ErrorIs(t, err, ErrNoData)
	_, err = l.BeginWrite("f")
	require.ErrorIs(t, err, ErrNoData)

	// The fetch after expiry (Y10) must be of the base.
	require.ErrorIs(t, l.PutData("f", syncrule.Version{ETag: "other"}, stringReader("data")), ErrInvalid)
	require.NoError(t, l.PutData("f", info.State.Base, stringReader("data")))
	require.Equal(t, "data", readFile(t, l, "f"))
	l = reopen(t, l)
	require.Equal(t, "data", readFile(t, l, "f"))
}

// Invariant 7: opening an existing dir lists every dirty record and every queued op.
func TestInv7RecoveryIsTheNormalStart(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "clean", "c")
	writeFile(t, l, "moved", "m")
	upload(t, l, "clean")
	upload(t, l, "moved")
	writeFile(t, l, "dirty", "d")
	require.NoError(t, l.Rename("moved", "there"))
	_, _ = l.Mkdir("dir", 0o755, 0, 0)
	l = reopen(t, l)
	require.Equal(t, []string{"dir", "dirty", "there"}, dirtyPaths(t, l))
	ops, _ := l.Pending()
	require.Len(t, ops, 1)
	require.Equal(t, "pre/moved", ops[0].Key)
}
