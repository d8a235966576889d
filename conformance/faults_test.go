package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
)

// refusePart answers the nth UploadPart request with 403 AccessDenied, which the SDK does not
// retry, as a bucket policy or an expired credential would.
func refusePart(n int32) func(http.Handler) http.Handler {
	var parts atomic.Int32
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") && parts.Add(1) == n {
				// Read the part first: a server that answers before the body is in resets
				// the connection, which the SDK rightly retries.
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected</Message></Error>`))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// S4: a write failure in the middle of an upload gives EIO on write, close or fsync, and
// leaves no object and no incomplete upload behind.
func TestUploadFailureS4(t *testing.T) {
	for _, finish := range []string{"close", "fsync"} {
		t.Run(finish, func(t *testing.T) {
			srv, err := embedded.Start(embedded.Options{Buckets: []string{harness.Bucket}, Middleware: refusePart(2)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			store, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: harness.Bucket, EndpointURL: srv.URL(), ForcePathStyle: true, StaticCredentials: embedded.Credentials})
			if err != nil {
				t.Fatal(err)
			}
			m := harness.MountServer(t, srv, store, harness.Options{Args: []string{"--write-part-size", "5242880"}})

			f, err := os.Create(m.Path("big"))
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 1<<20)
			rand.Read(data)
			var failed error
			for i := 0; i < 30 && failed == nil; i++ {
				_, failed = f.Write(data)
			}
			if failed == nil {
				if finish == "fsync" {
					failed = f.Sync()
				}
			}
			if err := f.Close(); failed == nil {
				failed = err
			}
			if errnoOf(failed) != syscall.EIO {
				t.Fatalf("write/%s after a refused part: %v, want EIO", finish, failed)
			}
			if _, err := store.Head(context.Background(), "big"); !errors.Is(err, s3.ErrNotFound) {
				t.Fatalf("an object was left behind: %v", err)
			}
			ups, err := store.ListMultipartUploads(context.Background(), "")
			if err != nil || len(ups) != 0 {
				t.Fatalf("incomplete uploads left behind: %v %v", ups, err)
			}
			// The kernel releases the file after close(2) returns; then it is gone.
			for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				_, err := os.Stat(m.Path("big"))
				if errors.Is(err, os.ErrNotExist) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the failed file is still shown: %v", err)
				}
			}
		})
	}
}

// S4: a file several parts long reads back identical after close.
func TestWriteReadBackS4(t *testing.T) {
	m := harness.New(t, harness.Options{Args: []string{"--write-part-size", "5242880"}})
	data := make([]byte, 23<<20+333)
	rand.Read(data)
	if err := os.WriteFile(m.Path("w.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(m.Path("w.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differ from the %d written", len(got), len(data))
	}
	ups, err := m.Store.ListMultipartUploads(context.Background(), "")
	if err != nil || len(ups) != 0 {
		t.Fatalf("incomplete uploads left behind: %v %v", ups, err)
	}
}

// refusePuts answers every PutObject of key with 403 while on is set, as a bucket policy would.
func refusePuts(key string, on *atomic.Bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if on.Load() && r.Method == http.MethodPut && r.URL.Path == "/"+harness.Bucket+"/"+key && r.Header.Get("X-Amz-Copy-Source") == "" {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected</Message></Error>`))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// S4, S6: an overwrite whose upload fails leaves the bucket's version, and every read of it
// afterwards gets all of it: the kernel must not keep the size the failed writer reached
// (the fault campaign found reads cut short at a writer's size).
func TestFailedOverwriteReadsWhole(t *testing.T) {
	var refusing atomic.Bool
	srv, err := embedded.Start(embedded.Options{Buckets: []string{harness.Bucket}, Middleware: refusePuts("f", &refusing)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	store, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: harness.Bucket, EndpointURL: srv.URL(), ForcePathStyle: true, StaticCredentials: embedded.Credentials})
	if err != nil {
		t.Fatal(err)
	}
	old := bytes.Repeat([]byte("the bucket's version\n"), 500)
	m := harness.MountServer(t, srv, store, harness.Options{Args: []string{"--allow-overwrite", "--metadata-ttl", "60"}})
	m.Put(t, "f", old)
	if b, err := os.ReadFile(m.Path("f")); err != nil || !bytes.Equal(b, old) {
		t.Fatalf("before: %d bytes, %v", len(b), err)
	}
	refusing.Store(true)
	f, err := os.OpenFile(m.Path("f"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("short"))
	if err := f.Close(); errnoOf(err) != syscall.EIO {
		t.Fatalf("close of the refused overwrite: %v, want EIO", err)
	}
	// Until the kernel releases the failed file, opening it may fail; a read that succeeds
	// must return the bucket's version whole.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(m.Path("f"))
		if err == nil {
			if !bytes.Equal(b, old) {
				t.Fatalf("after the failed overwrite the file reads %d bytes, want the bucket's %d", len(b), len(old))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the failed overwrite the file cannot be read: %v", err)
		}
	}
}
