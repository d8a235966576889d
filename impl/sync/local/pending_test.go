package local

import (
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// holdCommits keeps the shared committer busy in a transaction that runs fn (nil: nothing)
// when release is called, so that every change queued meanwhile waits behind it.
func holdCommits(t *testing.T, l *Layer, fn func(tx *bolt.Tx) error) (release func()) {
	t.Helper()
	running, done := make(chan struct{}), make(chan struct{})
	go l.commits.update(func(tx *bolt.Tx) error {
		select {
		case <-running: // a run again after another change failed
		default:
			close(running)
		}
		<-done
		if fn != nil {
			return fn(tx)
		}
		return nil
	})
	<-running
	var once bool
	release = func() {
		if !once {
			once = true
			close(done)
		}
	}
	t.Cleanup(release)
	return release
}

// returnsWithin reports whether fn returns within a short time; fn goes on running otherwise,
// and its result comes through the channel.
func returnsWithin(fn func() error) (chan error, bool) {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	select {
	case err := <-ch:
		ch <- err
		return ch, true
	case <-time.After(200 * time.Millisecond):
		return ch, false
	}
}

// A create of a new name is answered while its record's commit waits behind another: the
// kernel holds the directory across a create, so a create that waited for its commit kept
// every other create in the directory waiting too. Until the commit, the file is seen as if
// it had been made (stat, lookup, its directory's mtime, a second create of the name), its
// writes go to its data file, and its close waits for the commit before it commits the size.
func TestCreateIsAnsweredBeforeItsCommit(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)
	before, err := l.Stat("d")
	require.NoError(t, err)
	release := holdCommits(t, l, nil)

	var h *Handle
	_, ok := returnsWithin(func() (err error) {
		_, h, err = l.CreateOpen("d/new", 0o640, 7, 8)
		return err
	})
	require.True(t, ok, "the create waited for its commit")
	require.NotNil(t, h)
	info, dirImported, err := l.LookupIn("d", "new")
	require.NoError(t, err)
	require.Equal(t, KindFile, info.Kind)
	require.EqualValues(t, 0o640, info.Attr.Mode)
	require.EqualValues(t, 7, info.Attr.UID)
	require.Equal(t, before.Imported, dirImported)
	dir, err := l.Stat("d")
	require.NoError(t, err)
	require.False(t, dir.Attr.Mtime.Before(info.Attr.Mtime), "the directory's mtime counts the create")
	_, _, err = l.CreateOpen("d/new", 0o644, 0, 0)
	require.ErrorIs(t, err, ErrExists)

	_, err = h.WriteAt([]byte("written before the commit"), 0)
	require.NoError(t, err)
	info, err = l.Stat("d/new")
	require.NoError(t, err)
	require.EqualValues(t, len("written before the commit"), info.Size)

	closed, ok := returnsWithin(h.Close)
	require.False(t, ok, "a close returned before the record it makes durable was committed")
	listed, ok := returnsWithin(func() error { _, err := l.List("d"); return err })
	require.False(t, ok, "a listing returned without the pending create")
	release()
	require.NoError(t, <-closed)
	require.NoError(t, <-listed)

	l = reopen(t, l)
	require.Equal(t, "written before the commit", readFile(t, l, "d/new"))
	require.Contains(t, dirtyPaths(t, l), "d/new")
	info, err = l.Stat("d/new")
	require.NoError(t, err)
	require.EqualValues(t, 0o640, info.Attr.Mode)
}

// A create whose commit fails after it was answered (the importer put the name in the layer
// first) loses nothing it promised: its fsync and close fail, the name is the importer's,
// and its data file is gone.
func TestCreateWhoseCommitFailsFailsItsClose(t *testing.T) {
	l, dir := newLayer(t)
	release := holdCommits(t, l, func(tx *bolt.Tx) error {
		_, err := l.newRecordTx(tx, "taken", KindFile, Attr{Mode: 0o600}, "")
		return err
	})
	var h *Handle
	created, ok := returnsWithin(func() (err error) {
		_, h, err = l.CreateOpen("taken", 0o644, 0, 0)
		return err
	})
	require.True(t, ok, "the create waited for its commit")
	require.NoError(t, <-created)
	_, err := h.WriteAt([]byte("lost"), 0)
	require.NoError(t, err)
	release()
	require.ErrorIs(t, l.SyncNamespace(), ErrCreateLost, "fsync of the directory reports the lost create")
	err = h.Sync()
	require.ErrorIs(t, err, ErrCreateLost)
	require.ErrorIs(t, err, syscall.EIO, "EIO, as for a lost write-back, not the cause's EEXIST")
	require.NotErrorIs(t, err, syscall.EEXIST)
	require.Error(t, h.Close())
	info, err := l.Stat("taken")
	require.NoError(t, err)
	require.EqualValues(t, 0o600, info.Attr.Mode, "the name is the other change's")
	_, err = os.Stat(filepath.Join(dir, DataDir, filepath.Base(l.dataPath(h.f.id))))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// While a create is pending, its directory's mtime and ctime are the create's, as its commit
// will make them, even when the directory's times were set later than the create (a clock
// ahead, touch -d), and a stat that races the create's commit and the close after it never
// answers the size before the writes.
func TestPendingCreateTimesAndSize(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)
	future := time.Now().Add(24 * time.Hour)
	require.NoError(t, l.Utimens("d", future, nil))
	release := holdCommits(t, l, nil)
	var h *Handle
	_, ok := returnsWithin(func() (err error) { _, h, err = l.CreateOpen("d/f", 0o644, 0, 0); return err })
	require.True(t, ok)
	pending, err := l.Stat("d")
	require.NoError(t, err)
	release()
	require.NoError(t, l.SyncNamespace())
	committed, err := l.Stat("d")
	require.NoError(t, err)
	require.True(t, pending.Attr.Mtime.Equal(committed.Attr.Mtime), "mtime %v while pending, %v after", pending.Attr.Mtime, committed.Attr.Mtime)
	require.True(t, pending.Attr.Ctime.Equal(committed.Attr.Ctime), "ctime %v while pending, %v after", pending.Attr.Ctime, committed.Attr.Ctime)
	require.NoError(t, h.Close())

	// The stat reads the pending create, then the commit and a close and release run before
	// it looks for the open file.
	release = holdCommits(t, l, nil)
	_, h, err = l.CreateOpen("d/g", 0o644, 0, 0)
	require.NoError(t, err)
	_, err = h.WriteAt([]byte("written"), 0)
	require.NoError(t, err)
	closed := make(chan error, 1)
	statHook = func() {
		go func() {
			release()
			closed <- h.Close()
		}()
		select {
		case err := <-closed:
			closed <- err
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer func() { statHook = func() {} }()
	info, err := l.Stat("d/g")
	statHook = func() {}
	require.NoError(t, err)
	require.EqualValues(t, len("written"), info.Size)
	require.NoError(t, <-closed)
}

// A create waits for nothing that is not new to the layer: over a tombstone (a file deleted
// here whose delete is owed) it commits before it returns, as before.
func TestCreateOverATombstoneCommitsFirst(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "f", "old")
	upload(t, l, "f")
	require.NoError(t, l.Remove("f"))
	release := holdCommits(t, l, nil)
	created, ok := returnsWithin(func() error { _, _, err := l.CreateOpen("f", 0o644, 0, 0); return err })
	require.False(t, ok, "a create over a tombstone must commit first")
	release()
	require.NoError(t, <-created)
}

// dataFiles lists the data files in l's sync dir, by name.
func dataFiles(t *testing.T, l *Layer) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(l.dir, DataDir))
	require.NoError(t, err)
	out := []string{}
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// recordIDs lists the names of the data files l's records hold, in order.
func recordIDs(t *testing.T, l *Layer) []string {
	t.Helper()
	out := []string{}
	seen := map[uint64]bool{}
	require.NoError(t, l.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bNodes).ForEach(func(k, v []byte) error {
			r, err := decodeRec(pathOfNodeKey(k), v)
			if err == nil && r.Kind == KindFile && r.State.Data == syncrule.LocalData && !seen[r.ID] {
				seen[r.ID] = true
				out = append(out, filepath.Base(l.dataPath(r.ID)))
			}
			return err
		})
	}))
	sort.Strings(out)
	return out
}
