package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

const window = 10 * time.Second

// env is one embedded bucket, one sync dir on a fake clock, and an engine over them.
type env struct {
	t      *testing.T
	store  s3.Store // the bucket, undecorated
	clk    *clock.Fake
	dir    string
	layer  *local.Layer
	e      *Engine
	cancel context.CancelFunc
	done   chan error
	logs   *lockedBuffer

	puts, parts, copies, deletes atomic.Int64 // requests the server saw
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with the server's handler wrapped in middleware (inside the request
// counting), if it is not nil.
func newEnvWith(t *testing.T, middleware func(http.Handler) http.Handler) *env {
	t.Helper()
	v := &env{t: t, clk: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), dir: t.TempDir(), logs: &lockedBuffer{}}
	count := v.count
	if middleware != nil {
		count = func(next http.Handler) http.Handler { return v.count(middleware(next)) }
	}
	_, v.store = s3test.Embedded(t, s3test.Options{Server: embedded.Options{Middleware: count}, Bucket: "b", MaxAttempts: 1})
	v.openLayer()
	t.Cleanup(func() {
		v.stop()
		v.layer.Close()
		if t.Failed() {
			t.Logf("engine log:\n%s", v.logs)
		}
	})
	return v
}

func (v *env) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, part := r.URL.Query()["uploadId"]
		switch {
		case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
			v.copies.Add(1)
		case r.Method == http.MethodPut && part:
			v.parts.Add(1)
		case r.Method == http.MethodPut:
			v.puts.Add(1)
		case r.Method == http.MethodDelete && !part:
			v.deletes.Add(1)
		}
		next.ServeHTTP(w, r)
	})
}

func (v *env) openLayer() {
	l, err := local.Open(v.dir, local.Options{Bucket: "b", Clock: v.clk, UID: 1, GID: 2})
	require.NoError(v.t, err)
	v.layer = l
}

// reopen closes and reopens the sync dir, as a restart does.
func (v *env) reopen() {
	v.stop()
	require.NoError(v.t, v.layer.Close())
	v.openLayer()
}

func attrs(info local.Info) map[string]string {
	return map[string]string{"mode": fmt.Sprint(info.Attr.Mode), "uid": fmt.Sprint(info.Attr.UID)}
}

// start runs a new engine over the layer and store (the undecorated bucket if nil).
func (v *env) start(store s3.Store, tweak func(*Config)) {
	v.t.Helper()
	if store == nil {
		store = v.store
	}
	cfg := Config{Layer: v.layer, Store: store, Clock: v.clk, Attrs: attrs,
		Params: syncrule.Params{WriteBackDelay: window, ExpireAfter: -1},
		Log:    slog.New(slog.NewTextHandler(v.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := New(cfg)
	require.NoError(v.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	v.e, v.cancel, v.done = e, cancel, make(chan error, 1)
	go func() { v.done <- e.Run(ctx) }()
}

func (v *env) stop() {
	if v.cancel == nil {
		return
	}
	v.cancel()
	select {
	case err := <-v.done:
		require.NoError(v.t, err)
	case <-time.After(10 * time.Second):
		v.t.Fatal("Run did not return after cancel")
	}
	v.cancel = nil
}

// settle wakes the engine and waits until it has nothing to do at the current fake time: a
// whole loop step ran after the wake-up, no op is running, and no op finished since.
func (v *env) settle() {
	v.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v.e.Notify()
		seq := v.e.kickSeq.Load()
		for v.e.stepSeq.Load() < seq {
			if time.Now().After(deadline) {
				v.t.Fatalf("engine did not settle; stats %+v", v.e.Stats())
			}
			time.Sleep(time.Millisecond)
		}
		if v.e.Stats().RunningOps == 0 && v.e.kickSeq.Load() == seq {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (v *env) advance(d time.Duration) {
	v.clk.Advance(d)
	v.settle()
}

func (v *env) flush() {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(v.t, v.e.Flush(ctx))
}

func (v *env) write(path, data string) {
	v.t.Helper()
	if _, err := v.layer.Stat(path); err != nil {
		_, err := v.layer.Create(path, 0o644, 1, 2)
		require.NoError(v.t, err)
	}
	require.NoError(v.t, v.layer.Truncate(path, 0))
	_, err := v.layer.WriteAt(path, []byte(data), 0)
	require.NoError(v.t, err)
	if v.e != nil {
		v.e.Notify()
	}
}

// object returns the object's body, or ok=false if there is none.
func (v *env) object(key string) (string, bool) {
	v.t.Helper()
	rc, _, err := v.store.Get(context.Background(), key, 0, -1, "")
	if errors.Is(err, s3.ErrNotFound) {
		return "", false
	}
	require.NoError(v.t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(v.t, err)
	return string(b), true
}

func (v *env) keys() []string {
	v.t.Helper()
	page, err := v.store.List(context.Background(), s3.ListInput{})
	require.NoError(v.t, err)
	var out []string
	for _, o := range page.Objects {
		out = append(out, o.Key)
	}
	sort.Strings(out)
	return out
}

func (v *env) requireSynced() {
	v.t.Helper()
	dirty, err := v.layer.Dirty()
	require.NoError(v.t, err)
	require.Empty(v.t, dirty)
	ops, err := v.layer.Pending()
	require.NoError(v.t, err)
	require.Empty(v.t, ops)
}

func TestUploadWaitsForTheWindow(t *testing.T) {
	v := newEnv(t)
	v.start(nil, nil)
	v.write("f", "hello")
	v.settle()
	_, ok := v.object("f")
	require.False(t, ok, "uploaded before the window")

	v.advance(window - time.Second)
	_, ok = v.object("f")
	require.False(t, ok, "uploaded before the window")
	require.Zero(t, v.puts.Load())

	v.advance(time.Second)
	body, ok := v.object("f")
	require.True(t, ok)
	require.Equal(t, "hello", body)
	head, err := v.store.Head(context.Background(), "f")
	require.NoError(t, err)
	require.Equal(t, "420", head.Metadata["mode"]) // 0644
	require.Equal(t, "1", head.Metadata["uid"])
	v.requireSynced()
	require.Equal(t, uint64(1), v.e.Stats().Uploads)
}

func TestBurstCostsOnePut(t *testing.T) {
	v := newEnv(t)
	v.start(nil, nil)
	for i := range 6 {
		v.write("f", fmt.Sprintf("version %d", i))
		v.advance(time.Second)
	}
	require.Zero(t, v.puts.Load())
	v.advance(window)
	body, _ := v.object("f")
	require.Equal(t, "version 5", body)
	require.Equal(t, int64(1), v.puts.Load())
	v.requireSynced()
}

func TestFlushUploadsNow(t *testing.T) {
	v := newEnv(t)
	v.start(nil, nil)
	v.write("a", "A")
	v.write("b", "B")
	v.flush()
	for k, want := range map[string]string{"a": "A", "b": "B"} {
		body, ok := v.object(k)
		require.True(t, ok)
		require.Equal(t, want, body)
	}
	require.Equal(t, int64(2), v.puts.Load())
	v.requireSynced()
}

// The engine's lines keep their weight: the line per object written back is debug, so that
// an rm -rf of 10,000 files is the mount's summary, not 10,000 lines; errors stay visible.
func TestLogLevels(t *testing.T) {
	v := newEnv(t)
	v.start(failingPuts{v.store}, nil)
	v.write("a", "A")
	v.clk.Advance(2 * window)
	require.Eventually(t, func() bool { return strings.Contains(v.logs.String(), "upload of /a") }, 5*time.Second, 10*time.Millisecond)
	v.stop()
	v.start(nil, nil)
	v.flush()
	out := v.logs.String()
	require.Contains(t, out, `level=ERROR msg="sync: error: upload of /a`)
	require.Contains(t, out, `level=DEBUG msg="sync: uploaded /a`)
}

// failingPuts fails every Put.
type failingPuts struct{ s3.Store }

func (f failingPuts) Put(context.Context, string, io.ReadSeeker, int64, s3.WriteOptions) (s3.ObjectInfo, error) {
	return s3.ObjectInfo{}, errors.New("injected failure")
}

// blockingStore holds the first Put until released, to change the file during its upload.
type blockingStore struct {
	s3.Store
	armed   atomic.Bool
	started chan string
	release chan struct{}
}

func (b *blockingStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	if b.armed.CompareAndSwap(true, false) {
		b.started <- key
		<-b.release
	}
	return b.Store.Put(ctx, key, body, size, opts)
}

func TestChangeDuringUploadGoesInTheNextRound(t *testing.T) {
	v := newEnv(t)
	bs := &blockingStore{Store: v.store, started: make(chan string, 1), release: make(chan struct{})}
	bs.armed.Store(true)
	v.start(bs, nil)
	v.write("f", "old content")
	v.clk.Advance(window)
	v.e.Notify()
	select {
	case <-bs.started:
	case <-time.After(10 * time.Second):
		t.Fatal("upload did not start")
	}
	v.write("f", "new") // the snapshot was taken: this is the next generation
	close(bs.release)
	v.settle()

	body, _ := v.object("f")
	require.Equal(t, "old content", body, "the upload is the snapshot, not a mix (Y6)")
	dirty, err := v.layer.Dirty()
	require.NoError(t, err)
	require.Len(t, dirty, 1, "a change during the upload leaves the file dirty")
	require.Equal(t, int64(1), v.puts.Load())

	v.advance(window)
	body, _ = v.object("f")
	require.Equal(t, "new", body)
	require.Equal(t, int64(2), v.puts.Load())
	v.requireSynced()
}

func TestDirectoriesSymlinksDeletes(t *testing.T) {
	v := newEnv(t)
	v.start(nil, nil)
	_, err := v.layer.Mkdir("d", 0o750, 1, 2)
	require.NoError(t, err)
	_, err = v.layer.Symlink("../target", "d/l", 1, 2)
	require.NoError(t, err)
	v.write("d/f", "data")
	v.flush()
	require.Equal(t, []string{"d/", "d/f", "d/l"}, v.keys())
	head, err := v.store.Head(context.Background(), "d/")
	require.NoError(t, err)
	require.Zero(t, head.Size)
	require.Equal(t, "488", head.Metadata["mode"]) // 0750, Y8
	body, _ := v.object("d/l")
	require.Equal(t, "../target", body)

	require.NoError(t, v.layer.Remove("d/f"))
	require.NoError(t, v.layer.Remove("d/l"))
	v.e.Notify()
	v.flush()
	require.NoError(t, v.layer.Rmdir("d"))
	v.e.Notify()
	v.flush()
	require.Empty(t, v.keys())
	require.Equal(t, int64(3), v.deletes.Load())
	v.requireSynced()
}

func TestRenameDirectory(t *testing.T) {
	v := newEnv(t)
	v.start(nil, nil)
	for _, d := range []string{"d", "d/sub"} {
		_, err := v.layer.Mkdir(d, 0o755, 1, 2)
		require.NoError(t, err)
	}
	files := map[string]string{"a": "A", "b": "B", "sub/c": "C"}
	for name, data := range files {
		v.write("d/"+name, data)
	}
	v.flush()
	require.Equal(t, []string{"d/", "d/a", "d/b", "d/sub/", "d/sub/c"}, v.keys())

	require.NoError(t, v.layer.Rename("d", "e"))
	v.e.Notify()
	v.flush()
	require.Equal(t, []string{"e/", "e/a", "e/b", "e/sub/", "e/sub/c"}, v.keys())
	for name, data := range files {
		body, _ := v.object("e/" + name)
		require.Equal(t, data, body)
	}
	require.Equal(t, int64(5), v.copies.Load())
	require.Equal(t, uint64(5), v.e.Stats().Renames)
	v.requireSynced()
}

func TestMultipartUpload(t *testing.T) {
	v := newEnv(t)
	v.start(nil, func(c *Config) { c.PartSize = 5 << 20 })
	data := make([]byte, 12<<20)
	rand.Read(data)
	v.write("big", string(data))
	v.flush()
	body, ok := v.object("big")
	require.True(t, ok)
	require.True(t, body == string(data), "multipart object differs from the file")
	require.Equal(t, int64(3), v.parts.Load())
	require.Zero(t, v.puts.Load())
	v.requireSynced()

	// The new base is the completed object's ETag: the next upload's If-Match holds.
	v.write("big", "small now")
	v.flush()
	body, _ = v.object("big")
	require.Equal(t, "small now", body)
	v.requireSynced()
}

func TestRetryAfterFailures(t *testing.T) {
	v := newEnv(t)
	faults := s3.NewFaults(v.store)
	faults.FailFrom("Put", 1, nil)
	v.start(faults, nil)
	v.write("f", "precious")
	v.advance(window)
	require.Equal(t, 1, faults.Calls("Put"))
	_, ok := v.object("f")
	require.False(t, ok)
	require.Equal(t, uint64(1), v.e.Stats().Failures)

	v.advance(MinBackoff - time.Millisecond)
	require.Equal(t, 1, faults.Calls("Put"), "retried before the backoff")
	v.advance(time.Millisecond)
	require.Equal(t, 2, faults.Calls("Put"))

	faults.Clear()
	v.advance(2*MinBackoff - time.Millisecond)
	_, ok = v.object("f")
	require.False(t, ok, "backoff doubles")
	v.advance(time.Millisecond)
	body, ok := v.object("f")
	require.True(t, ok)
	require.Equal(t, "precious", body)
	v.requireSynced()
	require.Equal(t, uint64(2), v.e.Stats().Failures)
}

func TestFlushReportsPersistentFailure(t *testing.T) {
	v := newEnv(t)
	faults := s3.NewFaults(v.store)
	faults.FailFrom("Put", 1, s3.ErrAccessDenied)
	v.start(faults, nil)
	v.write("f", "kept")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := v.e.Flush(ctx)
	require.ErrorIs(t, err, s3.ErrAccessDenied)
	buf := make([]byte, 4)
	n, err := v.layer.ReadAt("f", buf, 0)
	require.NoError(t, err)
	require.Equal(t, "kept", string(buf[:n]))
}

func TestRecoveryReplaysTheQueue(t *testing.T) {
	v := newEnv(t)
	// An upload started (state and op committed) but never run: the crash case.
	v.write("f", "survives")
	res, err := v.layer.Apply("f", syncrule.Flush{Now: v.clk.Now()}, syncrule.Params{})
	require.NoError(t, err)
	require.Len(t, res.Ops, 1)
	v.reopen()

	v.start(nil, nil)
	v.settle() // no clock movement: the replay is not a new round
	body, ok := v.object("f")
	require.True(t, ok)
	require.Equal(t, "survives", body)
	v.requireSynced()
}

func TestRecoveryFinishesRenames(t *testing.T) {
	v := newEnv(t)
	v.start(nil, nil)
	v.write("a", "A")
	v.write("c", "C")
	v.flush()
	v.stop()

	require.NoError(t, v.layer.Rename("a", "b"))
	require.NoError(t, v.layer.Rename("c", "d"))
	// The crash came after the copy and delete of a, before their results were recorded.
	_, err := v.store.Copy(context.Background(), "a", "b", s3.WriteOptions{})
	require.NoError(t, err)
	require.NoError(t, v.store.Delete(context.Background(), "a"))
	v.reopen()

	v.start(nil, nil)
	v.settle()
	require.Equal(t, []string{"b", "d"}, v.keys())
	body, _ := v.object("d")
	require.Equal(t, "C", body)
	v.requireSynced()
}

func TestReplayOfOwnWriteIsNotAConflict(t *testing.T) {
	v := newEnv(t)
	v.write("f", "mine")
	res, err := v.layer.Apply("f", syncrule.Flush{Now: v.clk.Now()}, syncrule.Params{})
	require.NoError(t, err)
	op := res.Ops[0]
	// The PUT landed before the crash; its result was never recorded.
	_, err = v.store.Put(context.Background(), "f", strings.NewReader("mine"), 4, s3.WriteOptions{
		Metadata: map[string]string{OpMetaKey: v.layer.FSID() + "." + fmt.Sprint(op.ID)}, IfNoneMatch: "*"})
	require.NoError(t, err)

	v.start(nil, nil)
	v.settle()
	v.requireSynced()
	require.Equal(t, int64(2), v.puts.Load(), "the replayed PUT failed its precondition")
	require.Zero(t, v.e.Stats().Conflicts, "and was recognised as our own write")
	require.NotContains(t, v.logs.String(), "conflict:")
}

// readLocal reads the file at path from the layer.
func (v *env) readLocal(path string) string {
	v.t.Helper()
	info, err := v.layer.Stat(path)
	require.NoError(v.t, err)
	buf := make([]byte, info.Size)
	n, err := v.layer.ReadAt(path, buf, 0)
	if err != io.EOF {
		require.NoError(v.t, err)
	}
	return string(buf[:n])
}

func TestConflictBucketWins(t *testing.T) {
	v := newEnv(t)
	v.start(nil, func(c *Config) { c.Params.ImportThreshold = 1 << 10 })
	lf := syncrule.LostFoundDir(v.layer.FSID())
	ctx := context.Background()

	// (a) changed here and there: the bucket's version at the path, ours in lost+found.
	v.write("f", "base")
	v.flush()
	theirs, err := v.store.Put(ctx, "f", strings.NewReader("theirs"), 6,
		s3.WriteOptions{Metadata: map[string]string{"mode": "33216"}})
	require.NoError(t, err)
	v.write("f", "mine")
	v.flush() // resolved, not pending
	body, _ := v.object("f")
	require.Equal(t, "theirs", body, "the bucket's version is not overwritten (C3)")
	require.Equal(t, "theirs", v.readLocal("f"), "and is imported at the path (C4)")
	info, err := v.layer.Stat("f")
	require.NoError(t, err)
	require.EqualValues(t, 0o700, info.Attr.Mode, "with its attributes")
	require.Equal(t, normETag(theirs.ETag), info.State.Base.ETag)
	lost := keymapJoin(lf, syncrule.LostFoundName(1, "f"))
	require.Equal(t, "mine", v.readLocal(lost), "the local version is in lost+found")
	info, err = v.layer.Stat(lost)
	require.NoError(t, err)
	require.Equal(t, "f", info.OriginalPath)
	require.Contains(t, v.logs.String(), "sync: conflict: /f changed in the bucket")
	require.Contains(t, v.logs.String(), "moved to /"+lost)
	v.requireSynced()
	require.EqualValues(t, 1, v.e.Stats().Conflicts)

	// (b) changed here, deleted there: the path disappears.
	v.write("g", "base")
	v.flush()
	require.NoError(t, v.store.Delete(ctx, "g"))
	v.write("g", "mine too")
	v.flush()
	_, err = v.layer.Stat("g")
	require.ErrorIs(t, err, local.ErrNotFound, "the bucket's absence wins")
	require.Equal(t, "mine too", v.readLocal(keymapJoin(lf, syncrule.LostFoundName(2, "g"))))
	_, ok := v.object("g")
	require.False(t, ok)

	// (c) deleted here, changed there: the delete is dropped (C6).
	v.write("h", "base")
	v.flush()
	_, err = v.store.Put(ctx, "h", strings.NewReader("theirs"), 6, s3.WriteOptions{})
	require.NoError(t, err)
	require.NoError(t, v.layer.Remove("h"))
	v.e.Notify()
	v.flush()
	body, ok = v.object("h")
	require.True(t, ok, "nothing was deleted")
	require.Equal(t, "theirs", body)
	info, err = v.layer.Stat("h")
	require.NoError(t, err, "the bucket's version reappears")
	require.EqualValues(t, 6, info.Size)
	require.Contains(t, v.logs.String(), "the local delete of /h was dropped")
	v.requireSynced()

	// Nothing in lost+found is ever uploaded (C5).
	for _, k := range v.keys() {
		require.False(t, strings.HasPrefix(k, lf), k)
	}
}

func keymapJoin(dir, name string) string { return dir + "/" + name }

func TestReplayOfOwnWriteThenDeleteLeavesNoObject(t *testing.T) {
	v := newEnv(t)
	v.write("f", "gone soon")
	res, err := v.layer.Apply("f", syncrule.Flush{Now: v.clk.Now()}, syncrule.Params{})
	require.NoError(t, err)
	op := res.Ops[0]
	// The PUT landed before the crash, then the file was deleted: only the op's marker
	// tells the engine the object is its own and must be deleted too.
	_, err = v.store.Put(context.Background(), "f", strings.NewReader("gone soon"), 9, s3.WriteOptions{
		Metadata: map[string]string{OpMetaKey: v.layer.FSID() + "." + fmt.Sprint(op.ID)}, IfNoneMatch: "*"})
	require.NoError(t, err)
	require.NoError(t, v.layer.Remove("f"))

	v.start(nil, nil)
	v.flush()
	require.Empty(t, v.keys())
	v.requireSynced()
}

func TestRenameThenNewFileAtOldKeyRunInOrder(t *testing.T) {
	v := newEnv(t)
	v.start(nil, nil)
	v.write("a", "first")
	v.flush()
	require.NoError(t, v.layer.Rename("a", "b"))
	v.write("a", "second") // its upload (If-None-Match) must wait for the rename's delete of a
	v.flush()
	require.Equal(t, []string{"a", "b"}, v.keys())
	body, _ := v.object("a")
	require.Equal(t, "second", body)
	body, _ = v.object("b")
	require.Equal(t, "first", body)
	require.Zero(t, v.e.Stats().Conflicts)
	v.requireSynced()
}

func TestMetadataOnlyChangeIsACopy(t *testing.T) {
	v := newEnv(t)
	v.start(nil, nil)
	v.write("f", "same bytes")
	v.flush()
	require.NoError(t, v.layer.Chmod("f", 0o600))
	v.e.Notify()
	v.flush()
	require.Equal(t, int64(1), v.puts.Load(), "no second PUT for a chmod (Y7)")
	require.Equal(t, int64(1), v.copies.Load())
	head, err := v.store.Head(context.Background(), "f")
	require.NoError(t, err)
	require.Equal(t, "384", head.Metadata["mode"])
	body, _ := v.object("f")
	require.Equal(t, "same bytes", body)
	v.requireSynced()
}

// A file renamed over one whose upload is running takes over that upload's state (its record
// continues the replaced one's, so that its own upload's precondition is what the bucket
// holds): the upload's result must reach it, or it waits for ever and every flush hangs.
func TestRenameOverFileWhoseUploadIsInFlight(t *testing.T) {
	for _, srcFlushed := range []bool{false, true} {
		t.Run(fmt.Sprintf("source in bucket %v", srcFlushed), func(t *testing.T) {
			v := newEnv(t)
			bs := &blockingStore{Store: v.store, started: make(chan string, 1), release: make(chan struct{})}
			v.start(bs, nil)
			if srcFlushed {
				v.write("a", "source")
				v.flush()
			}
			v.write("b", "replaced")
			bs.armed.Store(true)
			v.clk.Advance(window)
			v.e.Notify()
			select {
			case key := <-bs.started:
				require.Equal(t, "b", key)
			case <-time.After(10 * time.Second):
				t.Fatal("upload did not start")
			}
			if !srcFlushed {
				v.write("a", "source")
			}
			require.NoError(t, v.layer.Rename("a", "b"))
			close(bs.release)
			v.settle()

			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			go func() {
				for ctx.Err() == nil {
					v.clk.Advance(window)
					v.e.Notify()
					time.Sleep(5 * time.Millisecond)
				}
			}()
			require.NoError(t, v.e.Flush(ctx), "flush after a rename over an uploading file")
			require.Equal(t, []string{"b"}, v.keys())
			body, _ := v.object("b")
			require.Equal(t, "source", body)
			require.Zero(t, v.e.Stats().Conflicts, "the replaced file's own upload is no conflict")
			v.requireSynced()
		})
	}
}
