package watch_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/sync/watch"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

func TestPollFeedsChangesAndDeletes(t *testing.T) {
	e := newEnv(t)
	e.put("pre/a", "one")
	e.put("pre/b", "bee")
	e.put("pre/same", "same")
	e.put("pre/d/x", "x1")
	e.importDirs("", "d")
	w := e.watcher(watch.Config{})
	ctx := context.Background()

	// Nothing changed: one listing per imported directory and nothing fed.
	require.NoError(t, w.PollOnce(ctx))
	require.Empty(t, e.sink.take())
	lists, heads := e.cnt.reset()
	require.Equal(t, map[string]int{"pre/": 1, "pre/d/": 1}, lists)
	require.Empty(t, heads)

	a2 := e.put("pre/a", "two!")
	e.del("pre/b")
	x2 := e.put("pre/d/x", "x2")
	require.NoError(t, w.PollOnce(ctx))
	calls := e.sink.take()
	require.Equal(t, map[string]call{
		"a":   {"a", local.KindFile, syncrule.RemoteChanged{Version: syncrule.Version{ETag: a2.ETag}, Size: 4}},
		"b":   {"b", local.KindFile, syncrule.RemoteDeleted{}},
		"d/x": {"d/x", local.KindFile, syncrule.RemoteChanged{Version: syncrule.Version{ETag: x2.ETag}, Size: 2}},
	}, calls)
	require.Contains(t, e.changed, "a")
	require.Contains(t, e.logs.String(), "remote change of /b: object deleted")
}

func TestPollImportsNewNamesAndSubdirectories(t *testing.T) {
	e := newEnv(t)
	e.put("pre/a", "a")
	e.importDirs("")
	w := e.watcher(watch.Config{})

	c := e.put("pre/c", "new file")
	e.put("pre/e/f", "deep")
	e.put("pre/e/g/h", "deeper")
	e.put("pre/bad//key", "hidden (K3): an empty component")
	e.put("outside", "K8")
	require.NoError(t, w.PollOnce(context.Background()))
	require.Empty(t, e.sink.take(), "new names are imported, not fed")

	info, err := e.layer.Stat("c")
	require.NoError(t, err)
	require.Equal(t, local.KindFile, info.Kind)
	require.Equal(t, syncrule.Version{ETag: c.ETag}, info.State.Base)
	require.Equal(t, int64(8), info.Size)
	require.True(t, info.AttrPending)

	// A new subdirectory is recorded as a common prefix is by a first listing: not imported,
	// so it is not listed until a program looks into it.
	sub, err := e.layer.Stat("e")
	require.NoError(t, err)
	require.Equal(t, local.KindDir, sub.Kind)
	require.False(t, sub.Imported)
	_, err = e.layer.Stat("e/f")
	require.ErrorIs(t, err, local.ErrNotFound)
	// "bad" is shown as a directory (K1) and its hidden key is not (K3).
	bad, err := e.layer.Stat("bad")
	require.NoError(t, err)
	require.Equal(t, local.KindDir, bad.Kind)
	require.Contains(t, e.changed, "")

	e.cnt.reset()
	require.NoError(t, w.PollOnce(context.Background()))
	lists, _ := e.cnt.reset()
	require.Equal(t, map[string]int{"pre/": 1}, lists, "only imported directories are listed")
}

func TestPollSkipsLostFound(t *testing.T) {
	e := newEnv(t)
	lf := syncrule.LostFoundDir(e.layer.FSID())
	e.put("pre/"+lf+"/00000000000000000001-x", "from a bug")
	e.put("pre/a", "a")
	e.importDirs("")
	e.put("pre/"+syncrule.LostFoundDirPrefix+"other/y", "another mount's (C5: never uploaded)")
	w := e.watcher(watch.Config{})
	require.NoError(t, w.PollOnce(context.Background()))
	require.Empty(t, e.sink.take())
	list, err := e.layer.List("")
	require.NoError(t, err)
	for _, in := range list {
		require.NotContains(t, in.Path, syncrule.LostFoundDirPrefix)
	}
}

func TestPollSkipsKeysWithQueuedOperations(t *testing.T) {
	e := newEnv(t)
	e.put("pre/a", "a")
	e.put("pre/r", "to be renamed")
	e.importDirs("")
	w := e.watcher(watch.Config{})

	// A local new file whose upload is queued: the bucket showing an object there may be our
	// own upload whose result is not recorded yet.
	_, err := e.layer.Create("n", 0o644, 0, 0)
	require.NoError(t, err)
	res, err := e.layer.Apply("n", syncrule.Flush{}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.Len(t, res.Ops, 1)
	e.put("pre/n", "ours, in flight")
	// A rename queued (copy r -> s, delete r): the old key still holds the object and the
	// new one may hold the copy before the result is recorded.
	require.NoError(t, e.layer.Rename("r", "s"))
	e.put("pre/s", "the copy")

	require.NoError(t, w.PollOnce(context.Background()))
	require.Empty(t, e.sink.take())
	_, err = e.layer.Stat("r")
	require.ErrorIs(t, err, local.ErrNotFound, "a renamed file must not come back at its old name")
}

func TestPollReportsObjectOverLocalNewFile(t *testing.T) {
	// C3: a remote create at the name of a local file not uploaded yet is a conflict, detected
	// when the remote change arrives; the rules decide it (here: fed as RemoteChanged).
	e := newEnv(t)
	e.importDirs("")
	w := e.watcher(watch.Config{})
	_, err := e.layer.Create("m", 0o644, 0, 0)
	require.NoError(t, err)
	m := e.put("pre/m", "theirs")
	require.NoError(t, w.PollOnce(context.Background()))
	require.Equal(t, map[string]call{
		"m": {"m", local.KindFile, syncrule.RemoteChanged{Version: syncrule.Version{ETag: m.ETag}, Size: 6}},
	}, e.sink.take())
}

func TestPollTombstoneOfChangedObject(t *testing.T) {
	// C6: a local delete not yet sent, of an object that changed remotely, is fed the change
	// (the rules drop the delete); ImportDir alone would leave the tombstone.
	e := newEnv(t)
	e.put("pre/t", "one")
	e.importDirs("")
	w := e.watcher(watch.Config{})
	require.NoError(t, e.layer.Remove("t"))
	t2 := e.put("pre/t", "two")
	require.NoError(t, w.PollOnce(context.Background()))
	require.Equal(t, map[string]call{
		"t": {"t", local.KindFile, syncrule.RemoteChanged{Version: syncrule.Version{ETag: t2.ETag}, Size: 3}},
	}, e.sink.take())
}

func TestPollDirectoryMarker(t *testing.T) {
	e := newEnv(t)
	e.put("pre/d/x", "x")
	e.importDirs("", "d")
	require.True(t, e.base("d").IsZero())
	w := e.watcher(watch.Config{})

	// A marker appears: adopted as the directory's base, as its first listing would.
	m1 := e.put("pre/d/", "")
	require.NoError(t, w.PollOnce(context.Background()))
	require.Empty(t, e.sink.take())
	require.Equal(t, syncrule.Version{ETag: m1.ETag}, e.base("d"))

	// The marker changes (a marker with a body is still only a directory, K2): fed for the
	// directory, as its kind.
	m2 := e.put("pre/d/", "v2")
	require.NotEqual(t, m1.ETag, m2.ETag)
	require.NoError(t, w.PollOnce(context.Background()))
	require.Equal(t, map[string]call{"d": {"d", local.KindDir, syncrule.RemoteChanged{Version: syncrule.Version{ETag: m2.ETag}}}}, e.sink.take())

	// The marker and every key below go away: the directory stays (package doc); its file
	// is reported deleted.
	e.del("pre/d/")
	e.del("pre/d/x")
	require.NoError(t, w.PollOnce(context.Background()))
	calls := e.sink.take()
	require.Equal(t, map[string]call{"d/x": {"d/x", local.KindFile, syncrule.RemoteDeleted{}}}, calls)
	_, err := e.layer.Stat("d")
	require.NoError(t, err)
}

func TestPollManyPages(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 1100; i++ { // more than one page of 1000
		e.put("pre/p/"+name(i), "v")
	}
	e.importDirs("", "p")
	w := e.watcher(watch.Config{})
	e.del("pre/p/" + name(1050))
	z := e.put("pre/p/"+name(3), "changed")
	require.NoError(t, w.PollOnce(context.Background()))
	require.Equal(t, map[string]call{
		"p/" + name(1050): {"p/" + name(1050), local.KindFile, syncrule.RemoteDeleted{}},
		"p/" + name(3):    {"p/" + name(3), local.KindFile, syncrule.RemoteChanged{Version: syncrule.Version{ETag: z.ETag}, Size: 7}},
	}, e.sink.take())
}

func TestRunPollsUntilCancelled(t *testing.T) {
	e := newEnv(t)
	e.put("pre/a", "a")
	e.importDirs("")
	w := e.watcher(watch.Config{Interval: 10e6})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	e.del("pre/a")
	require.Eventually(t, func() bool {
		e.sink.mu.Lock()
		defer e.sink.mu.Unlock()
		return len(e.sink.calls) > 0
	}, 5e9, 10e6)
	cancel()
	require.NoError(t, <-done)
}

func name(i int) string {
	const digits = "0123456789"
	return string([]byte{'f', digits[i/1000%10], digits[i/100%10], digits[i/10%10], digits[i%10]})
}

// listHooks runs before[prefix] once before the first listing of prefix, and after[prefix]
// once after it has been read and before the watcher sees it.
type listHooks struct {
	s3.Store
	before, after map[string]func()
}

func (h *listHooks) List(ctx context.Context, in s3.ListInput) (s3.ListPage, error) {
	if fn := h.before[in.Prefix]; fn != nil {
		delete(h.before, in.Prefix)
		fn()
	}
	page, err := h.Store.List(ctx, in)
	if fn := h.after[in.Prefix]; fn != nil {
		delete(h.after, in.Prefix)
		fn()
	}
	return page, err
}

// A local delete that reaches the bucket between a poll's listing and its import must not
// come back from the stale listing: the name would reappear until the next poll, and `rm -r`
// of its directory failed with ENOTEMPTY (the crash cycles found it).
func TestPollDoesNotImportWhatWasDeletedMeanwhile(t *testing.T) {
	e := newEnv(t)
	e.put("pre/d/x", "x1")
	e.importDirs("", "d")
	params := syncrule.DefaultParams()
	var op local.Op
	hooks := &listHooks{Store: e.cnt,
		// After the poll read the queue (guard 2) and before it reads d's records: the
		// program deletes d/x, whose delete is queued.
		before: map[string]func(){"pre/": func() {
			require.NoError(t, e.layer.Remove("d/x"))
			a, err := e.layer.Apply("d/x", syncrule.Flush{Now: time.Now()}, params)
			require.NoError(t, err)
			require.Len(t, a.Ops, 1)
			op = a.Ops[0]
		}},
		// d's listing still shows the object; then the delete reaches the bucket and its
		// tombstone goes.
		after: map[string]func(){"pre/d/": func() {
			e.del("pre/d/x")
			_, err := e.layer.Apply("d/x", syncrule.DeleteSucceeded{Gen: op.Gen}, params)
			require.NoError(t, err)
			require.NoError(t, e.layer.Done(op.ID))
		}},
	}
	// One worker, so that the root is polled before d; the layer itself as the sink, so
	// that ImportDir and ApplyRemote are the real ones.
	w := watch.New(watch.Config{Layer: e.layer, Store: hooks, Prefix: prefix, Params: params, Workers: 1})
	require.NoError(t, w.PollOnce(context.Background()))
	require.Empty(t, hooks.before)
	require.Empty(t, hooks.after)
	ls, err := e.layer.List("d")
	require.NoError(t, err)
	require.Empty(t, ls, "a deleted name came back from a listing older than its delete")
	require.NoError(t, e.layer.Rmdir("d"))
}
