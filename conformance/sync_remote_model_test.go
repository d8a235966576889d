package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// putLog records the body of every PUT the server accepts, so the test can tell which
// versions reached the bucket at some point, even if another writer replaced them later.
type putLog struct {
	mu     sync.Mutex
	bodies map[string]bool
}

func (p *putLog) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Query().Has("partNumber") || r.Header.Get("x-amz-copy-source") != "" {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		next.ServeHTTP(rec, r)
		if rec.status == http.StatusOK {
			p.mu.Lock()
			p.bodies[decodeChunked(body)] = true
			p.mu.Unlock()
		}
	})
}

func (p *putLog) has(body string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for b := range p.bodies {
		if strings.Contains(b, body) {
			return true
		}
	}
	return false
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// decodeChunked returns the payload of an aws-chunked body as is; the versions are unique
// strings, so a substring search finds them either way.
func decodeChunked(b []byte) string { return string(b) }

// TestSyncRemoteWriterModel is C7 as a property: random local writes, remote puts and remote
// deletes of a few files interleave with the mount's own write-back (window 0) and its polling.
// At the end, after a flush and the polls settle, (1) the mount shows exactly the bucket, and
// (2) the last version a program closed of each file was either written to the bucket by the
// mount at some point or is in lost+found under its original path: nothing closed is lost.
func TestSyncRemoteWriterModel(t *testing.T) {
	if os.Getenv("MOUNT_S3_MODEL") != "1" {
		setRapidFlag(t, "rapid.seed", "20261127")
	}
	noRaceExitSleep(t)
	modelChecks(t, 6)
	setRapidFlag(t, "rapid.shrinktime", "30s")
	seq := 0
	rapid.Check(t, func(rt *rapid.T) {
		seq++
		tb := &iterTB{TB: t, rt: rt}
		puts := &putLog{bodies: map[string]bool{}}
		srv, err := embedded.Start(embedded.Options{Buckets: []string{harness.Bucket}, Middleware: puts.middleware})
		must(rt, err)
		rt.Cleanup(func() { srv.Close() })
		store, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: harness.Bucket, EndpointURL: srv.URL(),
			ForcePathStyle: true, StaticCredentials: embedded.Credentials})
		must(rt, err)
		syncDir, err := os.MkdirTemp("", "mount-s3-remote-model-")
		must(rt, err)
		rt.Cleanup(func() { os.RemoveAll(syncDir) })
		m := harness.MountServer(tb, srv, store, harness.Options{Args: []string{"--sync-dir", syncDir,
			"--write-back-delay", "0", "--poll-interval", "1s"}})
		must(rt, os.Mkdir(m.Path("m"), 0o755))
		ctx := context.Background()

		files := []string{"a", "b", "c"}
		lastLocal := map[string]string{} // path -> last version a program closed ("" after a local delete)
		steps := rapid.IntRange(3, 15).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			p := rapid.SampledFrom(files).Draw(rt, "file")
			v := fmt.Sprintf("s%d-step%d-%s", seq, i, p)
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0, 1, 2:
				body := "local " + v
				err := os.WriteFile(m.Path("m/"+p), []byte(body), 0o644)
				switch {
				case errors.Is(err, syscall.ENOENT):
					// The bucket deleted the file between the kernel's lookup and the open
					// (the kernel keeps a name for a second): the bucket won before anything
					// was written, so nothing closed is at stake. A program sees what it
					// would if the delete had come first.
				case err != nil:
					rt.Fatalf("step %d: write %s: %v\n%s", i, p, err, m.Logs())
				default:
					lastLocal[p] = body
				}
			case 3, 4:
				body := "remote " + v
				_, err := store.Put(ctx, "m/"+p, strings.NewReader(body), int64(len(body)), s3.WriteOptions{})
				must(rt, err)
			case 5:
				must(rt, store.Delete(ctx, "m/"+p))
			}
			if rapid.Bool().Draw(rt, "pause") {
				time.Sleep(time.Duration(rapid.IntRange(1, 300).Draw(rt, "ms")) * time.Millisecond)
			}
		}
		flushOut := func() {
			if out, err := harness.Flush(t, m.Dir); err != nil {
				rt.Fatalf("flush: %v: %s\n%s", err, out, m.Logs())
			}
		}
		flushOut()
		time.Sleep(2500 * time.Millisecond) // two polls
		flushOut()

		// (1) The mount shows the bucket.
		bucket := bucketObjects(tb, store, "m/")
		for _, p := range files {
			b, err := os.ReadFile(m.Path("m/" + p))
			obj, inBucket := bucket["m/"+p]
			switch {
			case err != nil && inBucket:
				rt.Fatalf("%s: the bucket has %q but the mount says %v\n%s", p, obj, err, m.Logs())
			case err == nil && !inBucket:
				rt.Fatalf("%s: the mount shows %q but the bucket has no object\n%s", p, b, m.Logs())
			case err == nil && string(b) != obj:
				rt.Fatalf("%s: the mount shows %q, the bucket %q\n%s", p, b, obj, m.Logs())
			}
		}
		// (2) Nothing closed is lost.
		lost := lostFound(rt, m.Dir)
		for p, body := range lastLocal {
			if body == "" || puts.has(body) || lost[body] == "m/"+p {
				continue
			}
			rt.Fatalf("%s: the version %q a program closed is neither written to the bucket nor in lost+found (lost+found: %v)\n%s",
				p, body, lost, m.Logs())
		}
	})
}

// lostFound maps the contents of every file in the mount's lost+found to its original path.
func lostFound(rt *rapid.T, mnt string) map[string]string {
	out := map[string]string{}
	dirs, _ := filepath.Glob(filepath.Join(mnt, syncrule.LostFoundDirPrefix+"*"))
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		must(rt, err)
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			b, err := os.ReadFile(p)
			must(rt, err)
			buf := make([]byte, 4096)
			n, err := syscall.Getxattr(p, syncrule.OriginalPathXattr, buf)
			must(rt, err)
			out[string(b)] = string(buf[:n])
		}
	}
	return out
}
