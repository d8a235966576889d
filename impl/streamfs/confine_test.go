package streamfs_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/streamfs"
	"github.com/mount-s3/mount-s3/impl/vfs"
)

// outsideWatch is an embedded-server middleware that records every request naming a key
// outside prefix: the object in the path, a listing's prefix, a copy's source.
type outsideWatch struct {
	prefix string
	mu     sync.Mutex
	seen   []string
}

func (o *outsideWatch) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		q := r.URL.Query()
		bad := ""
		switch {
		case key != "" && !strings.HasPrefix(key, o.prefix):
			bad = key
		case key == "" && (q.Has("list-type") || q.Has("uploads")) && !strings.HasPrefix(q.Get("prefix"), o.prefix):
			bad = "prefix=" + q.Get("prefix")
		}
		if src := r.Header.Get("X-Amz-Copy-Source"); src != "" {
			if u, _ := url.PathUnescape(src); !strings.Contains(u, "/"+o.prefix) {
				bad = "copy from " + u
			}
		}
		if bad != "" {
			o.mu.Lock()
			o.seen = append(o.seen, r.Method+" "+bad)
			o.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// names an adversary would try: climbing, empty, NUL, slashes, the prefix's own name, long.
var adversarialNames = []string{"a", "b", "..", ".", "", "/", "../x", "a/b", "p", "p-", "in", "x\x00y",
	strings.Repeat("n", 255), strings.Repeat("n", 256), `\`, "..."}

// TestNoRequestOutsidePrefix (K8): whatever names and operations a program sends through the
// streaming core, no request the store receives names a key outside the mount prefix. The
// bucket holds keys beside the prefix that look like it ("p", "p-x", "pp/y").
func TestNoRequestOutsidePrefix(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		prefix := rapid.SampledFrom([]string{"p/", "a/b/"}).Draw(rt, "prefix")
		watch := &outsideWatch{prefix: prefix}
		srv, err := embedded.Start(embedded.Options{Buckets: []string{"b"}, Middleware: watch.middleware})
		if err != nil {
			rt.Fatal(err)
		}
		defer srv.Close()
		store, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: "b", EndpointURL: srv.URL(), ForcePathStyle: true, StaticCredentials: embedded.Credentials, MaxAttempts: 1})
		if err != nil {
			rt.Fatal(err)
		}
		ctx := context.Background()
		for _, k := range []string{strings.TrimSuffix(prefix, "/"), prefix + "a", prefix + "d/e", "p-x", "pp/y", "a/bc"} {
			store.Put(ctx, k, strings.NewReader(k), int64(len(k)), s3.WriteOptions{})
		}
		watch.mu.Lock()
		watch.seen = nil // the seeding above is not the core's doing
		watch.mu.Unlock()
		f, err := streamfs.New(streamfs.Config{Store: store, Prefix: prefix, AllowOverwrite: true, AllowDelete: true})
		if err != nil {
			rt.Fatal(err)
		}
		dirs := []vfs.InodeID{vfs.RootID}
		name := func(label string) string { return rapid.SampledFrom(adversarialNames).Draw(rt, label) }
		dir := func() vfs.InodeID { return rapid.SampledFrom(dirs).Draw(rt, "dir") }
		for i := rapid.IntRange(1, 25).Draw(rt, "ops"); i > 0; i-- {
			switch rapid.IntRange(0, 7).Draw(rt, "op") {
			case 0:
				if e, err := f.Lookup(ctx, dir(), name("name")); err == nil && e.Attr.Mode.IsDir() {
					dirs = append(dirs, e.Attr.Inode)
				}
			case 1:
				if e, h, err := f.Create(ctx, dir(), name("name"), 0o644, vfs.Caller{}); err == nil {
					f.Write(ctx, h, 0, []byte("data"))
					f.Flush(ctx, h, vfs.PID(0))
					f.Release(h)
					_ = e
				}
			case 2:
				if e, err := f.MkDir(ctx, dir(), name("name"), os.ModeDir|0o755, vfs.Caller{}); err == nil {
					dirs = append(dirs, e.Attr.Inode)
				}
			case 3:
				f.Unlink(ctx, dir(), name("name"))
			case 4:
				f.RmDir(ctx, dir(), name("name"))
			case 5:
				if h, err := f.OpenDir(ctx, dir()); err == nil {
					f.ReadDir(ctx, h, 0)
					f.ReleaseDir(h)
				}
			case 6:
				f.Rename(ctx, dir(), name("from"), dir(), name("to"))
			case 7:
				if e, err := f.Lookup(ctx, dir(), name("name")); err == nil && !e.Attr.Mode.IsDir() {
					if h, err := f.Open(ctx, e.Attr.Inode, vfs.OpenFlags{Read: true}, vfs.PID(0)); err == nil {
						f.Read(ctx, h, 0, make([]byte, 16))
						f.Release(h)
					}
				}
			}
		}
		watch.mu.Lock()
		defer watch.mu.Unlock()
		if len(watch.seen) > 0 {
			rt.Fatalf("requests outside the prefix %q: %s", prefix, fmt.Sprint(watch.seen))
		}
	})
}
