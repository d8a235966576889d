// Package s3test owns the one test fixture for an embedded server with an SDK store: an
// in-process embedded S3 server (impl/s3/embedded) and the real SDK store talking to it over
// HTTP, optionally through a proxy in front. It is for tests only; the product never imports
// it.
package s3test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"testing"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
)

// DefaultBucket is the bucket Embedded creates when Options names none.
const DefaultBucket = "test-bucket"

// Options configures Embedded.
type Options struct {
	// Server is the embedded server's options (buckets, directory, middleware...).
	Server embedded.Options
	// Bucket is the bucket the store is for, created if Server.Buckets lacks it. ""
	// means the first of Server.Buckets, or DefaultBucket when there is none.
	Bucket string
	// MaxAttempts is the SDK retryer's attempt budget; 0 means s3.DefaultMaxAttempts, as
	// in s3.Config.
	MaxAttempts int
	// Front, if set, puts a server in front of the embedded one: it is given a reverse
	// proxy to the embedded server and returns the handler the store's requests reach
	// (to drop, delay, cut or record them). That front server is closed with the test.
	Front func(server *httputil.ReverseProxy) http.Handler
}

// Embedded starts an embedded server and returns it with an SDK store for opts' bucket.
// The server (and the front, if any) is closed when the test ends; any error fails the test.
func Embedded(t testing.TB, opts Options) (*embedded.Server, *s3.SDKStore) {
	t.Helper()
	bucket := opts.Bucket
	if bucket == "" && len(opts.Server.Buckets) > 0 {
		bucket = opts.Server.Buckets[0]
	}
	if bucket == "" {
		bucket = DefaultBucket
	}
	server := opts.Server
	if !slices.Contains(server.Buckets, bucket) {
		server.Buckets = append(slices.Clone(server.Buckets), bucket)
	}
	srv, err := embedded.Start(server)
	if err != nil {
		t.Fatalf("embedded server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	endpoint := srv.URL()
	if opts.Front != nil {
		target, err := url.Parse(endpoint)
		if err != nil {
			t.Fatalf("embedded server URL: %v", err)
		}
		front := httptest.NewServer(opts.Front(httputil.NewSingleHostReverseProxy(target)))
		t.Cleanup(front.Close)
		endpoint = front.URL
	}
	return srv, StoreAt(t, endpoint, bucket, opts.MaxAttempts)
}

// StoreAt returns an SDK store for bucket at endpoint (path-style) that signs with the
// embedded server's credentials. maxAttempts 0 means s3.DefaultMaxAttempts.
func StoreAt(t testing.TB, endpoint, bucket string, maxAttempts int) *s3.SDKStore {
	t.Helper()
	st, err := s3.NewSDKStore(context.Background(), s3.Config{
		Bucket: bucket, EndpointURL: endpoint, ForcePathStyle: true,
		StaticCredentials: embedded.Credentials, MaxAttempts: maxAttempts,
	})
	if err != nil {
		t.Fatalf("SDK store for %s at %s: %v", bucket, endpoint, err)
	}
	return st
}
