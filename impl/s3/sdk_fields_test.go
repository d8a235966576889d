package s3_test

import (
	"context"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
)

// recorded keeps the headers of every request an SDK store sends, by "METHOD kind" (kind: the
// query's action, or "object").
type recorded struct {
	mu      sync.Mutex
	headers map[string]http.Header
}

func recordingStore(t *testing.T) (*s3.SDKStore, *recorded) {
	t.Helper()
	rec := &recorded{headers: map[string]http.Header{}}
	record := func(proxy *httputil.ReverseProxy) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			kind := "object"
			for _, q := range []string{"uploads", "uploadId", "list-type"} {
				if r.URL.Query().Has(q) {
					kind = q
				}
			}
			if r.Header.Get("X-Amz-Copy-Source") != "" {
				kind = "copy"
			}
			rec.mu.Lock()
			rec.headers[r.Method+" "+kind] = r.Header.Clone()
			rec.mu.Unlock()
			proxy.ServeHTTP(w, r)
		})
	}
	_, st := s3test.Embedded(t, s3test.Options{Bucket: testBucket, MaxAttempts: 1, Front: record})
	return st, rec
}

func (r *recorded) get(t *testing.T, req string) http.Header {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.headers[req]
	require.True(t, ok, "no %s request was sent", req)
	return h
}

// Every write request carries what its WriteOptions ask for (storage class, encryption,
// content type, conditions), and nothing where an option is empty.
func TestWriteOptionsReachTheRequest(t *testing.T) {
	ctx := context.Background()
	st, rec := recordingStore(t)
	opts := s3.WriteOptions{StorageClass: "STANDARD_IA", SSE: "AES256", ContentType: "text/plain", IfNoneMatch: "*",
		Metadata: map[string]string{"mode": "644"}}
	_, err := st.Put(ctx, "a", strings.NewReader("x"), 1, opts)
	require.NoError(t, err)
	put := rec.get(t, "PUT object")
	require.Equal(t, "STANDARD_IA", put.Get("X-Amz-Storage-Class"))
	require.Equal(t, "AES256", put.Get("X-Amz-Server-Side-Encryption"))
	require.Equal(t, "text/plain", put.Get("Content-Type"))
	require.Equal(t, "*", put.Get("If-None-Match"))
	require.Equal(t, "644", put.Get("X-Amz-Meta-Mode"))
	require.NotEmpty(t, put.Get("Content-Md5"), "without a checksum option, Content-MD5")

	id, err := st.CreateMultipart(ctx, "m", s3.WriteOptions{StorageClass: "STANDARD_IA", SSE: "aws:kms", SSEKMSKeyID: "key-1", Checksum: "crc32c"})
	require.NoError(t, err)
	create := rec.get(t, "POST uploads")
	require.Equal(t, "STANDARD_IA", create.Get("X-Amz-Storage-Class"))
	require.Equal(t, "aws:kms", create.Get("X-Amz-Server-Side-Encryption"))
	require.Equal(t, "key-1", create.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"))
	require.Equal(t, "CRC32C", create.Get("X-Amz-Checksum-Algorithm"))
	require.NoError(t, st.AbortMultipart(ctx, "m", id))

	_, err = st.Copy(ctx, "a", "b", s3.WriteOptions{StorageClass: "STANDARD_IA", SourceIfMatch: `"etag"`})
	require.Error(t, err, "the source's ETag is not that")
	cp := rec.get(t, "PUT copy")
	require.Equal(t, "STANDARD_IA", cp.Get("X-Amz-Storage-Class"))
	require.Equal(t, `"etag"`, cp.Get("X-Amz-Copy-Source-If-Match"))
	require.Empty(t, cp.Get("X-Amz-Metadata-Directive"), "no metadata: the source's is kept")

	_, err = st.Put(ctx, "c", strings.NewReader("x"), 1, s3.WriteOptions{})
	require.NoError(t, err)
	plain := rec.get(t, "PUT object")
	for _, h := range []string{"X-Amz-Storage-Class", "X-Amz-Server-Side-Encryption", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id",
		"If-None-Match", "If-Match", "X-Amz-Checksum-Algorithm"} {
		require.Empty(t, plain.Get(h), "%s sent for an empty option", h)
	}
}
