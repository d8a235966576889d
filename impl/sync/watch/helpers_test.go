package watch_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
	"github.com/mount-s3/mount-s3/impl/sync/importer"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/sync/watch"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

const (
	bucket = "bkt"
	prefix = "pre/"
)

// call is one ApplyRemote the watcher made.
type call struct {
	Path string
	Kind local.Kind
	Ev   syncrule.Event
}

// fakeSink is a real layer for everything the watcher reads and imports, with an ApplyRemote
// that only records its calls: the rules' consequences are the layer's, tested there.
type fakeSink struct {
	*local.Layer
	mu    sync.Mutex
	calls []call
}

func (f *fakeSink) ApplyRemote(path string, kind local.Kind, ev syncrule.Event, p syncrule.Params) (local.Applied, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{path, kind, ev})
	return local.Applied{Actions: []syncrule.Action{syncrule.InvalidateKernelCache{}}}, nil
}

// take returns the calls so far, by path, and forgets them.
func (f *fakeSink) take() map[string]call {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]call{}
	for _, c := range f.calls {
		out[c.Path] = c
	}
	f.calls = nil
	return out
}

var _ watch.Sink = (*fakeSink)(nil)

// counting counts the listings (first pages) and HEADs sent, by key prefix / key.
type counting struct {
	s3.Store
	mu    sync.Mutex
	lists map[string]int
	heads map[string]int
}

func (c *counting) List(ctx context.Context, in s3.ListInput) (s3.ListPage, error) {
	if in.ContinuationToken == "" {
		c.mu.Lock()
		c.lists[in.Prefix]++
		c.mu.Unlock()
	}
	return c.Store.List(ctx, in)
}

func (c *counting) Head(ctx context.Context, key string) (s3.ObjectInfo, error) {
	c.mu.Lock()
	c.heads[key]++
	c.mu.Unlock()
	return c.Store.Head(ctx, key)
}

func (c *counting) reset() (lists, heads map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lists, heads = c.lists, c.heads
	c.lists, c.heads = map[string]int{}, map[string]int{}
	return lists, heads
}

type env struct {
	t       *testing.T
	store   s3.Store // direct, for the "other writer"
	cnt     *counting
	layer   *local.Layer
	sink    *fakeSink
	im      *importer.Importer
	logs    *bytes.Buffer
	changed []string
	mu      sync.Mutex
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, st := s3test.Embedded(t, s3test.Options{Bucket: bucket, MaxAttempts: 2})
	l, err := local.Open(t.TempDir(), local.Options{Bucket: bucket, Prefix: prefix, UID: 500, GID: 501})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	e := &env{t: t, store: st, cnt: &counting{Store: st, lists: map[string]int{}, heads: map[string]int{}},
		layer: l, sink: &fakeSink{Layer: l}, logs: &bytes.Buffer{}}
	// Threshold -1: no background fetches, so the tests see only the watcher's requests.
	e.im = importer.New(importer.Config{Layer: l, Store: st, Prefix: prefix, Threshold: -1, Workers: 2})
	t.Cleanup(e.im.Close)
	return e
}

func (e *env) watcher(cfg watch.Config) *watch.Watcher {
	if cfg.Layer == nil {
		cfg.Layer = e.sink
	}
	cfg.Store, cfg.Prefix = e.cnt, prefix
	cfg.Params = syncrule.DefaultParams()
	cfg.Log = slog.New(slog.NewTextHandler(&lockedWriter{mu: &e.mu, w: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.OnChange = func(p string) {
		e.mu.Lock()
		e.changed = append(e.changed, p)
		e.mu.Unlock()
	}
	return watch.New(cfg)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (e *env) put(key, body string) s3.ObjectInfo {
	e.t.Helper()
	info, err := e.store.Put(context.Background(), key, strings.NewReader(body), int64(len(body)), s3.WriteOptions{})
	require.NoError(e.t, err)
	return info
}

func (e *env) del(key string) {
	e.t.Helper()
	require.NoError(e.t, e.store.Delete(context.Background(), key))
}

// importDirs imports the directories as a program's first accesses would, and waits for the
// importer's background work.
func (e *env) importDirs(dirs ...string) {
	e.t.Helper()
	for _, d := range dirs {
		require.NoError(e.t, e.im.EnsureDir(context.Background(), d))
	}
	e.im.Wait()
	e.cnt.reset()
}

func (e *env) base(path string) syncrule.Version {
	e.t.Helper()
	info, err := e.layer.Stat(path)
	require.NoError(e.t, err)
	return info.State.Base
}

// head is the version the bucket holds at key, version id included (what a HEAD reports).
func (e *env) head(key string) syncrule.Version {
	e.t.Helper()
	info, err := e.store.Head(context.Background(), key)
	require.NoError(e.t, err)
	return syncrule.Version{ETag: info.ETag, VersionID: info.VersionID}
}
