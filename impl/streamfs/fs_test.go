package streamfs_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/fetchahead"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
	"github.com/mount-s3/mount-s3/impl/streamfs"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

type fixture struct {
	fs    *streamfs.FS
	store s3.Store
	clock *clock.Fake
}

func newFixture(t *testing.T, prefix string, keys map[string]string) *fixture {
	t.Helper()
	return newFixtureWith(t, fixtureOptions{prefix: prefix, keys: keys})
}

// fixtureOptions: the mount prefix, the objects to seed, a middleware on the server, the
// metadata and negative TTL (default 1 s).
type fixtureOptions struct {
	prefix     string
	keys       map[string]string
	middleware func(http.Handler) http.Handler
	ttl        time.Duration
	// fetchAhead, if set, is given the store and becomes the file system's FetchAhead.
	fetchAhead *fetchahead.Config
	overwrite  bool // --allow-overwrite
	delete     bool // --allow-delete
}

func newFixtureWith(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	srv, store := s3test.Embedded(t, s3test.Options{Server: embedded.Options{Buckets: []string{"b"}, Middleware: o.middleware}})
	// Straight into the server's backend: a big directory's thousands of PUTs over HTTP
	// took seconds under the race detector.
	for k, v := range o.keys {
		if _, err := srv.Backend().PutObject("b", k, map[string]string{}, bytes.NewReader([]byte(v)), int64(len(v)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if o.ttl == 0 {
		o.ttl = time.Second
	}
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	cfg := streamfs.Config{Store: store, Clock: clk, Prefix: o.prefix, MetadataTTL: o.ttl, NegativeTTL: o.ttl, AllowOverwrite: o.overwrite, AllowDelete: o.delete}
	if o.fetchAhead != nil {
		fc := *o.fetchAhead
		fc.Store = store
		cfg.FetchAhead = fetchahead.New(fc)
		t.Cleanup(cfg.FetchAhead.Close)
	}
	f, err := streamfs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.CheckInvariants(); err != nil && !t.Failed() {
			t.Errorf("the inode and handle tables at the end of the test: %v", err)
		}
	})
	return &fixture{fs: f, store: store, clock: clk}
}

// walk lists the whole visible tree through Lookup/ReadDir, as the kernel would.
func (x *fixture) walk(t *testing.T) map[string]keymap.Kind {
	t.Helper()
	ctx := context.Background()
	out := map[string]keymap.Kind{"": keymap.Dir}
	var visit func(id vfs.InodeID, path string)
	visit = func(id vfs.InodeID, path string) {
		h, err := x.fs.OpenDir(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		defer x.fs.ReleaseDir(h)
		entries, err := x.fs.ReadDir(ctx, h, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries[2:] {
			p := keymap.Join(path, e.Name)
			out[p] = e.Kind
			got, err := x.fs.Lookup(ctx, id, e.Name)
			if err != nil {
				t.Fatalf("lookup %q: %v", p, err)
			}
			if got.Attr.Inode != e.Inode {
				t.Errorf("%q: readdir inode %d, lookup inode %d", p, e.Inode, got.Attr.Inode)
			}
			if e.Kind == keymap.Dir {
				visit(e.Inode, p)
			}
		}
	}
	visit(vfs.RootID, "")
	return out
}

// The tree the core shows is exactly the tree the specification derives from the keys.
func TestTreeMatchesSpec(t *testing.T) {
	keys := []string{"a", "a/x", "-a-", "-a/y", "d/", "d/e/f", "h/../i", "j//k", "p q/r", "l/.", "m/m", "m/m/"}
	for _, prefix := range []string{"", "d/"} {
		t.Run(fmt.Sprintf("prefix=%q", prefix), func(t *testing.T) {
			m := map[string]string{}
			for _, k := range keys {
				m[k] = "v"
			}
			x := newFixture(t, prefix, m)
			got := x.walk(t)
			want := keymap.Tree(prefix, keys)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("tree\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestReadAndTTL(t *testing.T) {
	ctx := context.Background()
	x := newFixture(t, "", map[string]string{"f": "hello"})
	e, err := x.fs.Lookup(ctx, vfs.RootID, "f")
	if err != nil {
		t.Fatal(err)
	}
	if e.Attr.Size != 5 {
		t.Fatalf("size %d", e.Attr.Size)
	}
	// A change in the bucket is not seen within the TTL (S3) and is seen after it.
	if _, err := x.store.Put(ctx, "f", bytes.NewReader([]byte("hello world")), 11, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _, err := x.fs.GetAttr(ctx, e.Attr.Inode)
	if err != nil || a.Size != 5 {
		t.Fatalf("within TTL: size %d err %v, want the cached 5", a.Size, err)
	}
	x.clock.Advance(2 * time.Second)
	a, _, err = x.fs.GetAttr(ctx, e.Attr.Inode)
	if err != nil || a.Size != 11 {
		t.Fatalf("after TTL: size %d err %v, want 11", a.Size, err)
	}
	h, err := x.fs.Open(ctx, e.Attr.Inode, vfs.OpenFlags{Read: true}, vfs.PID(1))
	if err != nil {
		t.Fatal(err)
	}
	defer x.fs.Release(h)
	buf := make([]byte, 64)
	n, err := x.fs.Read(ctx, h, 6, buf)
	if err != nil || string(buf[:n]) != "world" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	// A version changed after open is not mixed into the read.
	if _, err := x.store.Put(ctx, "f", bytes.NewReader([]byte("HELLO WORLD")), 11, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.fs.Read(ctx, h, 0, buf); vfs.CodeOf(err) != vfs.CodeIO {
		t.Fatalf("read of a changed object: %v, want an I/O error", err)
	}
}

func TestNegativeLookupTTL(t *testing.T) {
	ctx := context.Background()
	x := newFixture(t, "", nil)
	if _, err := x.fs.Lookup(ctx, vfs.RootID, "n"); vfs.CodeOf(err) != vfs.CodeNotFound {
		t.Fatalf("lookup: %v", err)
	}
	if _, err := x.store.Put(ctx, "n", bytes.NewReader(nil), 0, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.fs.Lookup(ctx, vfs.RootID, "n"); vfs.CodeOf(err) != vfs.CodeNotFound {
		t.Fatalf("within the negative TTL: %v, want not found", err)
	}
	x.clock.Advance(2 * time.Second)
	if _, err := x.fs.Lookup(ctx, vfs.RootID, "n"); err != nil {
		t.Fatalf("after the negative TTL: %v", err)
	}
}

// LookupListed answers READDIRPLUS from what the listing recorded and never asks the store:
// an entry whose metadata has expired, or that appeared after the listing, is left to a
// LOOKUP of its own.
func TestLookupListedAnswersFromTheListingOnly(t *testing.T) {
	ctx := context.Background()
	x := newFixture(t, "", map[string]string{"d/a": "alpha", "d/b": "bb"})
	d, err := x.fs.Lookup(ctx, vfs.RootID, "d")
	if err != nil {
		t.Fatal(err)
	}
	h, err := x.fs.OpenDir(ctx, d.Attr.Inode)
	if err != nil {
		t.Fatal(err)
	}
	defer x.fs.ReleaseDir(h)
	if _, err := x.fs.ReadDir(ctx, h, 0); err != nil {
		t.Fatal(err)
	}
	// The bucket changes after the listing: LookupListed still says what the listing said.
	if _, err := x.store.Put(ctx, "d/a", bytes.NewReader([]byte("changed!!")), 9, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.store.Put(ctx, "d/c", bytes.NewReader([]byte("c")), 1, s3.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	e, err := x.fs.LookupListed(ctx, d.Attr.Inode, "a")
	if err != nil || e.Attr.Size != 5 {
		t.Fatalf("listed entry: size %d err %v, want the listing's 5", e.Attr.Size, err)
	}
	x.fs.Forget(e.Attr.Inode, 1)
	if _, err := x.fs.LookupListed(ctx, d.Attr.Inode, "c"); err == nil {
		t.Fatal("an entry the listing did not have was answered")
	}
	x.clock.Advance(2 * time.Second)
	if _, err := x.fs.LookupListed(ctx, d.Attr.Inode, "b"); err == nil {
		t.Fatal("an entry whose metadata expired was answered without asking the store")
	}
	// A plain Lookup asks the store.
	if e, err := x.fs.Lookup(ctx, d.Attr.Inode, "a"); err != nil || e.Attr.Size != 9 {
		t.Fatalf("lookup: size %d err %v, want 9", e.Attr.Size, err)
	}
}

// heldHEAD answers the first HEAD of key as the server answers it at once, but only when
// release is closed: a lookup that asked before something changed, and hears back after.
type heldHEAD struct {
	key     string
	asked   chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *heldHEAD) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held := false
		if r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, "/"+h.key) {
			h.once.Do(func() { held = true })
		}
		if !held {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		close(h.asked)
		<-h.release
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

// A lookup that heard "absent" from the store after this mount had created and committed the
// name meanwhile must not answer, or remember, the name as absent: the kernel's revalidation of
// a name takes no lock on the directory, so it can overlap a create and its close (the chaos
// campaign: an unlink then found nothing, and the object stayed).
func TestLookupOlderThanOwnCreateIsNotNegative(t *testing.T) {
	ctx := context.Background()
	hold := &heldHEAD{key: "f", asked: make(chan struct{}), release: make(chan struct{})}
	x := newFixtureWith(t, fixtureOptions{middleware: hold.middleware})
	type answer struct {
		e   vfs.Entry
		err error
	}
	done := make(chan answer, 1)
	go func() {
		e, err := x.fs.Lookup(ctx, vfs.RootID, "f") // the store has no f yet
		done <- answer{e, err}
	}()
	<-hold.asked
	_, h, err := x.fs.Create(ctx, vfs.RootID, "f", 0o644, vfs.Caller{Pid: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.fs.Write(ctx, h, 0, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := x.fs.Flush(ctx, h, vfs.PID(1)); err != nil {
		t.Fatal(err)
	}
	x.fs.Release(h)
	close(hold.release)
	a := <-done
	if a.err != nil {
		t.Fatalf("the lookup that crossed this mount's create: %v, want the new file", a.err)
	}
	if a.e.Attr.Size != 4 {
		t.Fatalf("the lookup that crossed this mount's create: size %d, want 4", a.e.Attr.Size)
	}
}
