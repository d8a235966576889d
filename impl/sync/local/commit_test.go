package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

const waitFor, pollEvery = 10 * time.Second, 5 * time.Millisecond

func testDB(t *testing.T) *bolt.DB {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("b"))
		return err
	}))
	return db
}

// holdCommit starts a commit (of the key "first") that stays in progress until release is
// called, so that the changes started meanwhile queue behind it; first gives its result.
func holdCommit(c *committer) (release func(), first <-chan error) {
	hold, held, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- c.update(func(tx *bolt.Tx) error {
			select { // the function may run again: only its first run signals
			case <-held:
			default:
				close(held)
			}
			<-hold
			return tx.Bucket([]byte("b")).Put([]byte("first"), []byte("1"))
		})
	}()
	<-held
	return func() { close(hold) }, done
}

// queued is how many changes wait for the next commit.
func queued(c *committer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// Changes queued while a commit runs share the next one, and a lone change is committed at
// once (the first call below is alone: it needs no other caller to come).
func TestCommitterSharesATransaction(t *testing.T) {
	c := &committer{db: testDB(t)}
	release, first := holdCommit(c)
	const n = 20
	var mu sync.Mutex
	txOf := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.update(func(tx *bolt.Tx) error {
				mu.Lock()
				txOf[i] = tx.ID()
				mu.Unlock()
				return tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%02d", i), []byte("v"))
			})
			require.NoError(t, err)
		}()
	}
	require.Eventually(t, func() bool { return queued(c) == n }, waitFor, pollEvery)
	release()
	require.NoError(t, <-first)
	wg.Wait()
	ids := map[int]bool{}
	for _, id := range txOf {
		ids[id] = true
	}
	require.Len(t, ids, 1, "the %d changes queued behind one commit share the next", n)
	require.NoError(t, c.db.View(func(tx *bolt.Tx) error {
		require.Equal(t, n+1, tx.Bucket([]byte("b")).Stats().KeyN)
		return nil
	}))
	require.False(t, c.running, "the last committer hands nothing over")
}

// A change that fails gets its own error, seen after the changes before it in the batch,
// and leaves nothing behind; the others commit.
func TestCommitterFailedChangeLeavesTheBatch(t *testing.T) {
	c := &committer{db: testDB(t)}
	release, first := holdCommit(c)
	errExists := errors.New("exists")
	put := func(k string, failIfPresent bool) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("b"))
			if failIfPresent && b.Get([]byte(k)) != nil {
				b.Put([]byte("partial"), []byte("x")) // rolled back with the failure
				return errExists
			}
			return b.Put([]byte(k), []byte("v"))
		}
	}
	calls := []func(*bolt.Tx) error{put("a", true), put("a", true), put("b", true), put("c", false)}
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, fn := range calls {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.update(fn) }()
		require.Eventually(t, func() bool { return queued(c) == i+1 }, waitFor, pollEvery) // in this order
	}
	release()
	require.NoError(t, <-first)
	wg.Wait()
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], errExists, "the second create of a sees the first")
	require.NoError(t, errs[2])
	require.NoError(t, errs[3])
	require.NoError(t, c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		for _, k := range []string{"a", "b", "c"} {
			require.NotNil(t, b.Get([]byte(k)), k)
		}
		require.Nil(t, b.Get([]byte("partial")), "a failed change leaves nothing")
		return nil
	}))
}

// Closes at the same time share commits and each keeps its bytes across a reopen.
func TestConcurrentClosesKeepTheirBytes(t *testing.T) {
	l, dir := newLayer(t)
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("f%02d", i)
			_, h, err := l.CreateOpen(p, 0o644, 0, 0)
			require.NoError(t, err)
			_, err = h.WriteAt([]byte(p+" body"), 0)
			require.NoError(t, err)
			require.NoError(t, h.Close())
		}()
	}
	wg.Wait()
	l.entries.mu.Lock()
	made, synced := l.entries.made, l.entries.synced
	l.entries.mu.Unlock()
	require.Equal(t, uint64(n), made)
	require.Equal(t, made, synced, "every close with bytes waited for its file's entry")
	require.NoError(t, l.Close())
	l2, err := Open(dir, testOpts())
	require.NoError(t, err)
	defer closeChecked(t, l2)
	for i := range n {
		p := fmt.Sprintf("f%02d", i)
		info, err := l2.Stat(p)
		require.NoError(t, err)
		require.EqualValues(t, len(p+" body"), info.State.Size, p)
		b, err := os.ReadFile(l2.dataPath(info.ID))
		require.NoError(t, err)
		require.Equal(t, p+" body", string(b))
	}
}

// Create does not hold l.mu from its commit to the handle's acquire: an upload of the new,
// empty file in between must not leave the bytes written next clean (invariants 1 and 4).
func TestCreateOpenAfterAnUploadInBetween(t *testing.T) {
	l, _ := newLayer(t)
	uploaded := false
	crashHook = func(p string) {
		if p == "create-after-intent" && !uploaded {
			uploaded = true
			require.True(t, upload(t, l, "new"), "the empty file is uploaded and clean")
		}
	}
	defer func() { crashHook = func(string) {} }()
	_, h, err := l.CreateOpen("new", 0o644, 0, 0)
	require.NoError(t, err)
	require.NoError(t, l.SyncNamespace()) // the create's commit, answered before it, runs the hook
	require.True(t, uploaded)
	_, err = h.WriteAt([]byte("after"), 0)
	require.NoError(t, err)
	require.NoError(t, h.Close())
	require.Equal(t, []string{"new"}, dirtyPaths(t, l), "the write after the upload is owed")
	require.True(t, upload(t, l, "new"))
	require.Empty(t, dirtyPaths(t, l))
}

// A change of attributes of a file with unsynced writes commits their size: the new file's
// entry in data/ must be durable first, as for a close (cp -p: write, fchmod, close).
func TestSetattrOfANewFileSyncsItsEntry(t *testing.T) {
	l, _ := newLayer(t)
	_, h, err := l.CreateOpen("new", 0o644, 0, 0)
	require.NoError(t, err)
	_, err = h.WriteAt([]byte("hello"), 0)
	require.NoError(t, err)
	require.NoError(t, l.Chmod("new", 0o600))
	l.entries.mu.Lock()
	made, synced := l.entries.made, l.entries.synced
	l.entries.mu.Unlock()
	require.Equal(t, made, synced, "the chmod committed the size: the entry is durable")
	info, err := l.Stat("new")
	require.NoError(t, err)
	require.EqualValues(t, 5, info.State.Size)
	require.NoError(t, h.Close())
}

// A data id a rolled-back transaction took is never handed out again in the process: a
// caller that made or removed a file for it would touch another record's data.
func TestDataIDsOutliveRollbacks(t *testing.T) {
	l, _ := newLayer(t)
	var rolledBack, next uint64
	err := l.db.Update(func(tx *bolt.Tx) (err error) {
		if rolledBack, err = l.newDataID(tx); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	require.Error(t, err)
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) (err error) {
		next, err = l.newDataID(tx)
		return err
	}))
	require.Greater(t, next, rolledBack)
}
