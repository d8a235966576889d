package engine

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// lostAnswer is a store whose next PUT reaches the bucket but whose answer is lost, as when
// a connection is reset after the store acted.
type lostAnswer struct {
	s3.Store
	armed atomic.Bool
}

func (l *lostAnswer) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	info, err := l.Store.Put(ctx, key, body, size, opts)
	if err == nil && l.armed.CompareAndSwap(true, false) {
		return s3.ObjectInfo{}, errors.New("connection reset by peer (the store acted)")
	}
	return info, err
}

// An upload whose answer was lost, then a delete of the file: the object in the bucket is
// this sync dir's own write (its op marker says so), superseded by its own delete, so the
// delete removes it. It is not another writer's change to give back to the mount (C6), which
// had left a deleted file in the bucket and back in the mount (fault campaign, sync runs).
func TestDeleteAfterALostUploadAnswerDeletesOurWrite(t *testing.T) {
	v := newEnv(t)
	store := &lostAnswer{Store: v.store}
	v.start(store, nil)
	v.write("f", "first")
	v.flush()
	v.write("f", "second")
	store.armed.Store(true)
	v.advance(window)
	body, ok := v.object("f")
	require.True(t, ok)
	require.Equal(t, "second", body, "the PUT reached the bucket")

	require.NoError(t, v.layer.Remove("f"))
	v.advance(4 * MinBackoff) // past the failed upload's backoff
	v.flush()
	require.Empty(t, v.keys(), "the delete removed our own write:\n%s", v.logs.String())
	_, err := v.layer.Stat("f")
	require.Error(t, err, "the file stays deleted in the mount")
	v.requireSynced()
}

// An upload whose answer was lost is retried: the retry's precondition fails on the object
// the lost one made, which is ours, not a conflict to settle by moving the file away.
func TestRetryAfterALostUploadAnswerIsNotAConflict(t *testing.T) {
	v := newEnv(t)
	store := &lostAnswer{Store: v.store}
	v.start(store, nil)
	v.write("f", "first")
	v.flush()
	v.write("f", "second")
	store.armed.Store(true)
	v.advance(window)
	v.write("f", "third")
	v.advance(4 * MinBackoff)
	v.flush()
	body, ok := v.object("f")
	require.True(t, ok)
	require.Equal(t, "third", body, "%s", v.logs.String())
	require.Equal(t, []string{"f"}, v.keys(), "nothing in lost+found")
	v.requireSynced()
}

// The first upload of a file whose answer was lost, then a delete of the file before any
// retry: the engine finds its own write with a HEAD right after the failure and takes it as
// the file's version, so the delete removes it (chaos campaign, sync seed 8: the object stayed
// in the bucket, where nothing recorded it as ours, and came back as a remote change).
func TestFirstUploadLostAnswerThenDelete(t *testing.T) {
	v := newEnv(t)
	store := &lostAnswer{Store: v.store}
	v.start(store, nil)
	store.armed.Store(true)
	v.write("f", "first")
	v.advance(window)
	body, ok := v.object("f")
	require.True(t, ok)
	require.Equal(t, "first", body, "the PUT reached the bucket")
	require.False(t, store.armed.Load(), "and its answer was lost")

	require.NoError(t, v.layer.Remove("f"))
	v.advance(4 * MinBackoff)
	v.flush()
	require.Empty(t, v.keys(), "the delete removed our own write:\n%s", v.logs.String())
	v.requireSynced()
}
