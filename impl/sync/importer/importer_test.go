package importer_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
	"github.com/mount-s3/mount-s3/impl/sync/importer"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

const prefix = "pre/"

// counting wraps a Store and counts the requests the importer sends, by operation and key.
// before, if set, runs before each Get (a test changes the bucket there).
type counting struct {
	s3.Store
	mu       sync.Mutex
	n        map[string]int
	before   func(key string)
	failHead bool
}

func (c *counting) count(op, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[op+" "+key]++
}

func (c *counting) get(op, key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op+" "+key]
}

func (c *counting) total(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for k, n := range c.n {
		if strings.HasPrefix(k, op+" ") {
			t += n
		}
	}
	return t
}

func (c *counting) List(ctx context.Context, in s3.ListInput) (s3.ListPage, error) {
	if in.ContinuationToken == "" {
		c.count("LIST", in.Prefix) // one listing, however many pages
	}
	c.count("PAGE", in.Prefix)
	return c.Store.List(ctx, in)
}

func (c *counting) Head(ctx context.Context, key string) (s3.ObjectInfo, error) {
	c.count("HEAD", key)
	if c.failHead {
		return s3.ObjectInfo{}, errors.New("injected HEAD failure")
	}
	return c.Store.Head(ctx, key)
}

func (c *counting) Get(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, s3.ObjectInfo, error) {
	c.count("GET", key)
	if c.before != nil {
		c.before(key)
	}
	return c.Store.Get(ctx, key, off, n, ifMatch)
}

type env struct {
	t     *testing.T
	store s3.Store
	cnt   *counting
	layer *local.Layer
	keys  []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, st := s3test.Embedded(t, s3test.Options{Bucket: "bkt", MaxAttempts: 2})
	l, err := local.Open(t.TempDir(), local.Options{Bucket: "bkt", Prefix: prefix, UID: 500, GID: 501})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return &env{t: t, store: st, cnt: &counting{Store: st, n: map[string]int{}}, layer: l}
}

func (e *env) put(key, body string, meta map[string]string) {
	e.t.Helper()
	_, err := e.store.Put(context.Background(), key, strings.NewReader(body), int64(len(body)), s3.WriteOptions{Metadata: meta})
	require.NoError(e.t, err)
	e.keys = append(e.keys, key)
}

func (e *env) importer(threshold int64) *importer.Importer {
	im := importer.New(importer.Config{Layer: e.layer, Store: e.cnt, Prefix: prefix, Threshold: threshold, Workers: 4})
	e.t.Cleanup(im.Close)
	return im
}

var (
	big       = strings.Repeat("B", 200<<10) // above the default threshold
	s3fsMtime = time.Unix(1700000000, 500_000_000)
)

// seed fills the bucket with what a bucket written by s3fs, by FSx and by plain S3 clients
// looks like, with keys the mount must hide (K3) and a file shadowed by a directory (K4).
func (e *env) seed() {
	s3fs := map[string]string{"mode": "33216", "uid": "1001", "gid": "1002", "mtime": "1700000000.5"}
	e.put("pre/", "", nil) // the root's own marker
	e.put("pre/small.txt", "hello", s3fs)
	e.put("pre/fsx.txt", "fsx!", map[string]string{"file-permissions": "0100664", "file-owner": "2001", "file-group": "2002"})
	e.put("pre/plain.txt", "plain", nil)
	e.put("pre/big.bin", big, map[string]string{"mode": "33188", "uid": "7", "gid": "8", "mtime": "1600000000"})
	e.put("pre/link", "small.txt", map[string]string{"mode": "41471", "uid": "1001", "gid": "1002"})
	e.put("pre/d/", "", map[string]string{"mode": "16877"})
	e.put("pre/d/x.txt", "x", nil)
	e.put("pre/d/e/deep.txt", "deep", nil)
	e.put("pre/same", "file shadowed by the dir", nil)
	e.put("pre/same/inner.txt", "inner", nil)
	e.put("pre/bad//x", "empty component", nil)
	e.put("pre/./x", "dot", nil)
	e.put("pre/..", "dotdot", nil)
	e.put("pre/"+strings.Repeat("n", 256), "too long", nil)
	e.put("outside.txt", "not under the prefix", nil)
}

func (e *env) names(dir string) []keymap.Entry {
	e.t.Helper()
	infos, err := e.layer.List(dir)
	require.NoError(e.t, err)
	var out []keymap.Entry
	for _, in := range infos {
		k := keymap.File
		if in.Kind == local.KindDir {
			k = keymap.Dir
		}
		_, name := keymap.Split(in.Path)
		out = append(out, keymap.Entry{Name: name, Kind: k})
	}
	return out
}

func (e *env) read(path string) string {
	e.t.Helper()
	info, err := e.layer.Stat(path)
	require.NoError(e.t, err)
	buf := make([]byte, info.Size)
	n, err := e.layer.ReadAt(path, buf, 0)
	if err != io.EOF {
		require.NoError(e.t, err)
	}
	return string(buf[:n])
}

func (e *env) stat(path string) local.Info {
	e.t.Helper()
	info, err := e.layer.Stat(path)
	require.NoError(e.t, err)
	return info
}

func TestEnsureDirImportsAsStreamingModeShows(t *testing.T) {
	e := newEnv(t)
	e.seed()
	im := e.importer(0)
	ctx := context.Background()
	require.NoError(t, im.EnsureDir(ctx, ""))

	// Exactly the names, kinds and order the key rules give (K1-K8).
	tree := keymap.Tree(prefix, e.keys)
	require.Equal(t, keymap.Children(tree, ""), e.names(""))
	im.Wait()

	// Small files: data and attributes in the background, one GET each, no HEAD.
	require.Equal(t, "hello", e.read("small.txt"))
	s := e.stat("small.txt")
	require.Equal(t, local.Attr{Mode: 0o700, UID: 1001, GID: 1002, Mtime: s3fsMtime}, normal(s.Attr))
	require.False(t, s.AttrPending)
	require.False(t, s.State.Dirty())
	f := e.stat("fsx.txt")
	require.Equal(t, "fsx!", e.read("fsx.txt"))
	require.EqualValues(t, 0o664, f.Attr.Mode)
	require.EqualValues(t, 2001, f.Attr.UID)
	require.EqualValues(t, 2002, f.Attr.GID)
	p := e.stat("plain.txt")
	require.Equal(t, "plain", e.read("plain.txt"))
	require.EqualValues(t, 0o644, p.Attr.Mode, "no metadata: the defaults of S9")
	require.EqualValues(t, 500, p.Attr.UID)
	require.EqualValues(t, 501, p.Attr.GID)
	require.False(t, p.Attr.Mtime.IsZero())
	require.False(t, p.AttrPending)

	// The symlink: its body is the target.
	l := e.stat("link")
	require.Equal(t, local.KindSymlink, l.Kind)
	require.Equal(t, "small.txt", l.Target)
	require.EqualValues(t, 0o777, l.Attr.Mode)
	require.EqualValues(t, 1001, l.Attr.UID)

	// The large file: metadata by HEAD, no data.
	b := e.stat("big.bin")
	require.Equal(t, syncrule.NoData, b.State.Data)
	require.EqualValues(t, len(big), b.Size)
	require.Equal(t, local.Attr{Mode: 0o644, UID: 7, GID: 8, Mtime: time.Unix(1600000000, 0)}, normal(b.Attr))
	require.Zero(t, e.cnt.get("GET", "pre/big.bin"), "no background fetch of a large file")
	require.Equal(t, 1, e.cnt.get("HEAD", "pre/big.bin"))
	for _, k := range []string{"pre/small.txt", "pre/fsx.txt", "pre/plain.txt", "pre/link"} {
		require.Equal(t, 1, e.cnt.get("GET", k), k)
	}
	require.Equal(t, 4, e.cnt.total("GET"))
	require.Equal(t, 1, e.cnt.total("HEAD"))

	// Directories are imported on their own first access, not with the parent's.
	require.Equal(t, 1, e.cnt.total("LIST"))
	for _, dir := range []string{"d", "d/e", "same", "bad"} {
		require.NoError(t, im.EnsureDir(ctx, dir))
		require.Equal(t, keymap.Children(tree, dir), e.names(dir), dir)
	}
	require.Equal(t, "x", func() string { im.Wait(); return e.read("d/x.txt") }())
	require.Equal(t, "deep", e.read("d/e/deep.txt"))
	require.Equal(t, 5, e.cnt.total("LIST"))
	require.Empty(t, e.mustDirty())
}

// normal drops the monotonic clock and location so times compare by instant.
func normal(a local.Attr) local.Attr {
	a.Mtime = time.Unix(0, a.Mtime.UnixNano())
	return a
}

func (e *env) mustDirty() []local.Info {
	d, err := e.layer.Dirty()
	require.NoError(e.t, err)
	return d
}

func TestEnsureDirListsOncePerDirectory(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 30; i++ {
		e.put("pre/d/f"+strings.Repeat("x", i), "data", nil)
	}
	e.put("pre/other/f", "data", nil)
	im := e.importer(-1)
	ctx := context.Background()
	require.NoError(t, im.EnsureDir(ctx, ""))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 32; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); errs <- im.EnsureDir(ctx, "d") }()
		go func() { defer wg.Done(); errs <- im.EnsureDir(ctx, "other") }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 1, e.cnt.get("LIST", "pre/d/"))
	require.Equal(t, 1, e.cnt.get("LIST", "pre/other/"))
	require.Equal(t, 1, e.cnt.get("LIST", "pre/"))
	require.Len(t, e.names("d"), 30)
	// Imported is durable: later calls, and a new importer, list nothing.
	require.NoError(t, im.EnsureDir(ctx, "d"))
	im2 := e.importer(-1)
	require.NoError(t, im2.EnsureDir(ctx, "d"))
	require.Equal(t, 3, e.cnt.total("LIST"))
	im.Wait()
	require.Zero(t, e.cnt.total("GET"), "threshold < 0: nothing fetched in the background")

	// A directory that does not exist locally is an error, not a listing.
	require.ErrorIs(t, im.EnsureDir(ctx, "nope"), local.ErrNotFound)
	require.Equal(t, 3, e.cnt.total("LIST"))
}

func TestEnsureDirPagesThroughLargeDirectories(t *testing.T) {
	if testing.Short() {
		t.Skip("puts 1,100 objects")
	}
	e := newEnv(t)
	for i := 0; i < 1100; i++ {
		e.put("pre/"+strings.Repeat("0", 4-len(itoa(i)))+itoa(i), "", nil)
	}
	im := e.importer(-1)
	require.NoError(t, im.EnsureDir(context.Background(), ""))
	require.Len(t, e.names(""), 1100)
	require.Equal(t, 1, e.cnt.get("LIST", "pre/"))
	require.Equal(t, 2, e.cnt.get("PAGE", "pre/"))
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

func TestFetchLargeFileOnce(t *testing.T) {
	e := newEnv(t)
	e.put("pre/big.bin", big, map[string]string{"mode": "33152"})
	im := e.importer(0)
	ctx := context.Background()
	require.NoError(t, im.EnsureDir(ctx, ""))
	im.Wait()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- im.Fetch(ctx, "big.bin") }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, big, e.read("big.bin"))
	require.Equal(t, 1, e.cnt.get("GET", "pre/big.bin"), "concurrent fetches of one path share one GET")
	info := e.stat("big.bin")
	require.Equal(t, syncrule.LocalData, info.State.Data)
	require.EqualValues(t, 0o600, info.Attr.Mode)
	require.False(t, info.State.Dirty())
	// Local data: nothing more to fetch.
	require.NoError(t, im.Fetch(ctx, "big.bin"))
	require.Equal(t, 1, e.cnt.get("GET", "pre/big.bin"))
	require.Error(t, im.Fetch(ctx, "missing"))
}

// A fetch that finds the object changed since its import (a remote change no poll has
// reported yet) takes the bucket's new version whole (C2): never bytes of the old base, never
// a mix. A remote delete makes the file disappear.
func TestFetchTakesTheBucketsNewVersion(t *testing.T) {
	e := newEnv(t)
	e.put("pre/f", "version one", nil)
	e.put("pre/g", "doomed", nil)
	im := e.importer(-1)
	ctx := context.Background()
	require.NoError(t, im.EnsureDir(ctx, ""))
	old := e.stat("f").State.Base
	e.put("pre/f", "VERSION TWO", nil) // same size, other bytes
	require.NoError(t, im.Fetch(ctx, "f"))
	info := e.stat("f")
	require.Equal(t, syncrule.LocalData, info.State.Data)
	require.False(t, info.State.Base.Same(old), "the base is the new version")
	require.Equal(t, "VERSION TWO", e.read("f"))

	require.NoError(t, e.store.Delete(ctx, "pre/g"))
	require.ErrorIs(t, im.Fetch(ctx, "g"), s3.ErrNotFound)
	_, err := e.layer.Stat("g")
	require.ErrorIs(t, err, local.ErrNotFound, "the bucket's absence wins")
}

func TestBackgroundFetchRefusesChangedObject(t *testing.T) {
	e := newEnv(t)
	e.put("pre/f", "version one", nil)
	e.put("pre/g", "unchanged", nil)
	var once sync.Once
	e.cnt.before = func(key string) {
		if key == "pre/f" {
			once.Do(func() { e.put("pre/f", "VERSION TWO", nil) })
		}
	}
	im := e.importer(0)
	require.NoError(t, im.EnsureDir(context.Background(), ""))
	im.Wait()
	require.Equal(t, syncrule.NoData, e.stat("f").State.Data, "changed between listing and GET: not imported")
	require.Equal(t, "unchanged", e.read("g"))
}

func TestBackgroundWorkSkipsLocallyChangedFiles(t *testing.T) {
	e := newEnv(t)
	e.put("pre/big", big, map[string]string{"mode": "33152"})
	e.cnt.failHead = true
	im := e.importer(-1)
	require.NoError(t, im.EnsureDir(context.Background(), ""))
	im.Wait()
	require.Equal(t, 1, e.cnt.total("HEAD"))
	// A chmod after the import is the program's: the bucket's attributes must not undo it,
	// and a dirty file needs no HEAD.
	require.NoError(t, e.layer.Chmod("big", 0o444))
	e.cnt.failHead = false
	require.NoError(t, im.Resume())
	im.Wait()
	require.EqualValues(t, 0o444, e.stat("big").Attr.Mode)
	require.Equal(t, 1, e.cnt.total("HEAD"))
}

func TestResumeFinishesAttributesAfterRestart(t *testing.T) {
	e := newEnv(t)
	e.put("pre/big", big, map[string]string{"mode": "33152", "uid": "3", "gid": "4"})
	e.cnt.failHead = true
	im := e.importer(0)
	require.NoError(t, im.EnsureDir(context.Background(), ""))
	im.Wait()
	require.True(t, e.stat("big").AttrPending, "the HEAD failed: still the defaults")
	im.Close()

	e.cnt.failHead = false
	im2 := e.importer(0)
	require.NoError(t, im2.Resume())
	im2.Wait()
	info := e.stat("big")
	require.False(t, info.AttrPending)
	require.EqualValues(t, 0o600, info.Attr.Mode)
	require.EqualValues(t, 3, info.Attr.UID)
}

func TestCloseStopsBackgroundWork(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 20; i++ {
		e.put("pre/f"+itoa(i), "small", nil)
	}
	release := make(chan struct{})
	e.cnt.before = func(string) { <-release }
	im := importer.New(importer.Config{Layer: e.layer, Store: e.cnt, Prefix: prefix, Workers: 2})
	require.NoError(t, im.EnsureDir(context.Background(), ""))
	done := make(chan struct{})
	go func() { im.Close(); close(done) }()
	time.Sleep(10 * time.Millisecond)
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	require.LessOrEqual(t, e.cnt.total("GET"), 4, "queued work is dropped")
	im.Wait() // returns at once after Close
}

func TestFetchAfterExpiry(t *testing.T) {
	e := newEnv(t)
	e.put("pre/f", "small data", nil)
	im := e.importer(0)
	ctx := context.Background()
	require.NoError(t, im.EnsureDir(ctx, ""))
	im.Wait()
	require.NoError(t, e.layer.Expire("f"))
	require.Equal(t, syncrule.ExpiredData, e.stat("f").State.Data)
	require.NoError(t, im.Fetch(ctx, "f")) // Y10: the next read fetches the object again
	require.Equal(t, "small data", e.read("f"))
	require.Equal(t, 2, e.cnt.get("GET", "pre/f"))
}

// ImportAttrs answers a lookup with the object's attributes whether or not the background
// import got there first, a symlink with its target, and the layer records them soon after.
func TestImportAttrsAnswersTheBucketsAttributes(t *testing.T) {
	e := newEnv(t)
	e.put("pre/run.sh", "#!/bin/sh\n", map[string]string{"mode": "33261", "uid": "9", "gid": "10"})
	e.put("pre/ln", "run.sh", map[string]string{"mode": "41471"})
	e.put("pre/plain", "p", nil)
	im := e.importer(-1) // no data in the background: attributes only
	ctx := context.Background()
	require.NoError(t, im.EnsureDir(ctx, ""))

	got, err := im.ImportAttrs(ctx, "run.sh")
	require.NoError(t, err)
	require.False(t, got.AttrPending)
	require.EqualValues(t, 0o755, got.Attr.Mode)
	require.EqualValues(t, 9, got.Attr.UID)
	require.EqualValues(t, 10, got.Attr.GID)

	got, err = im.ImportAttrs(ctx, "ln")
	require.NoError(t, err)
	require.Equal(t, local.KindSymlink, got.Kind)
	require.Equal(t, "run.sh", got.Target)

	im.PrefetchAttrs("plain")
	im.Wait()
	require.Eventually(t, func() bool {
		return !e.stat("run.sh").AttrPending && !e.stat("plain").AttrPending
	}, 5*time.Second, 10*time.Millisecond, "the layer records what lookups and prefetches read")
	require.EqualValues(t, 0o755, e.stat("run.sh").Attr.Mode)
	require.LessOrEqual(t, e.cnt.get("HEAD", "pre/run.sh"), 2, "the lookup and the background import at most")
}
