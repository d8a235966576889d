// Package probetest has test helpers for stores that ignore conditional writes.
package probetest

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
	"github.com/mount-s3/mount-s3/impl/s3/storetest"
)

// Bucket is the bucket StartServer creates.
const Bucket = "bkt"

// conditionHeaders are the conditions StripConditions removes.
var conditionHeaders = []string{"If-Match", "If-None-Match", "X-Amz-Copy-Source-If-Match", "X-Amz-Copy-Source-If-None-Match"}

// StripConditions is an embedded.Options.Middleware that removes If-Match, If-None-Match and
// the copy-source conditions from every write (PUT, including copies, and POST for
// CompleteMultipartUpload) before the server sees it, as an S3-compatible store that ignores
// conditional writes behaves. GET and HEAD keep theirs.
// It never answers by itself, so the body is always read by the server (a middleware that
// answered with an error first would have to drain it). Stripped counts the requests changed.
type StripConditions struct {
	Stripped atomic.Int64
}

// Middleware wraps next.
func (s *StripConditions) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			stripped := false
			for _, h := range conditionHeaders {
				if r.Header.Get(h) != "" {
					stripped = true
					r.Header.Del(h)
				}
			}
			if stripped {
				s.Stripped.Add(1)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// StartServer starts an embedded server with Bucket, wrapped in middleware if not nil, and
// returns it with an SDK store for the bucket (two attempts a request); the server is closed
// at the end of the test.
func StartServer(t testing.TB, middleware func(http.Handler) http.Handler) (*embedded.Server, s3.Store) {
	t.Helper()
	return s3test.Embedded(t, s3test.Options{Server: embedded.Options{Middleware: middleware}, Bucket: Bucket, MaxAttempts: 2})
}

// FileKeyRules is an embedded.Options.Middleware that refuses, as MinIO does, every object
// key a store that keeps objects as files cannot hold: a component over 255 bytes, an empty
// component, "." or "..", a NUL byte or invalid UTF-8. It answers 400 with MinIO's error code
// XMinioInvalidObjectName. Refused counts the requests it refused.
type FileKeyRules struct {
	Refused atomic.Int64
}

// Middleware wraps next.
func (f *FileKeyRules) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Path style: /bucket/key.
		key := strings.TrimPrefix(r.URL.Path, "/")
		if i := strings.IndexByte(key, '/'); i >= 0 && (r.Method == http.MethodPut || r.Method == http.MethodGet && key[i+1:] != "") {
			if !storetest.FileKeyOK(key[i+1:]) {
				f.Refused.Add(1)
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>XMinioInvalidObjectName</Code>`+
					`<Message>Object name contains unsupported characters.</Message></Error>`)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
