package embedded_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
)

func start(t *testing.T, opts embedded.Options) (*embedded.Server, *s3.SDKStore) {
	t.Helper()
	srv, err := embedded.Start(opts)
	require.NoError(t, err)
	st, err := s3.NewSDKStore(context.Background(), s3.Config{
		Bucket: opts.Buckets[0], EndpointURL: srv.URL(), ForcePathStyle: true,
		StaticCredentials: embedded.Credentials, MaxAttempts: 2,
	})
	require.NoError(t, err)
	return srv, st
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	opts := embedded.Options{Dir: dir, Buckets: []string{"bkt"}}

	srv, st := start(t, opts)
	put, err := st.Put(ctx, "dir/obj", bytes.NewReader([]byte("durable")), 7, s3.WriteOptions{Metadata: map[string]string{"k": "v"}})
	require.NoError(t, err)
	require.NoError(t, srv.Close())

	srv, st = start(t, opts) // same dir; the bucket already exists
	defer srv.Close()
	head, err := st.Head(ctx, "dir/obj")
	require.NoError(t, err)
	require.Equal(t, put.ETag, head.ETag)
	require.Equal(t, map[string]string{"k": "v"}, head.Metadata)
	rc, _, err := st.Get(ctx, "dir/obj", 0, -1, "")
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, "durable", string(data))
}

func TestSecondServerOnSameDirFails(t *testing.T) {
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Options{Dir: dir, Buckets: []string{"bkt"}})
	require.NoError(t, err)
	defer srv.Close()
	start := time.Now()
	_, err = embedded.Start(embedded.Options{Dir: dir})
	require.Error(t, err, "the database is locked by the first server")
	require.Less(t, time.Since(start), 10*time.Second)
}

// Objects written straight into the backend must look like any other object over HTTP,
// Last-Modified included.
func TestBackendWritesHaveLastModified(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		srv, st := start(t, embedded.Options{Dir: dir, Buckets: []string{"bkt"}})
		_, err := srv.Backend().PutObject("bkt", "behind", map[string]string{"X-Amz-Meta-Who": "test"}, bytes.NewReader([]byte("abc")), 3, nil)
		require.NoError(t, err)

		resp, err := http.Head(srv.URL() + "/bkt/behind")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		lm, err := http.ParseTime(resp.Header.Get("Last-Modified"))
		require.NoError(t, err, "Last-Modified header %q", resp.Header.Get("Last-Modified"))
		require.WithinDuration(t, time.Now(), lm, time.Minute)

		head, err := st.Head(context.Background(), "behind")
		require.NoError(t, err)
		require.Equal(t, map[string]string{"who": "test"}, head.Metadata)
		require.Equal(t, int64(3), head.Size)
		require.NoError(t, srv.Close())
	}
}

// Internal request headers the SDK sends must not be stored and echoed back as if they
// were object metadata.
func TestOnlyObjectHeadersAreStored(t *testing.T) {
	srv, st := start(t, embedded.Options{Buckets: []string{"bkt"}})
	defer srv.Close()
	_, err := st.Put(context.Background(), "k", bytes.NewReader([]byte("x")), 1, s3.WriteOptions{StorageClass: "STANDARD_IA"})
	require.NoError(t, err)
	resp, err := http.Head(srv.URL() + "/bkt/k")
	require.NoError(t, err)
	resp.Body.Close()
	require.Empty(t, resp.Header.Get("X-Amz-Date"))
	require.Empty(t, resp.Header.Get("X-Amz-Content-Sha256"))
	head, err := st.Head(context.Background(), "k")
	require.NoError(t, err)
	require.Equal(t, "STANDARD_IA", head.StorageClass)
}

// Parallel ranged reads while the same objects are rewritten: with s3bolt this used to
// read freed mmap pages (garbage or SIGBUS).
func TestConcurrentReadsAndWritesPersistent(t *testing.T) {
	srv, st := start(t, embedded.Options{Dir: t.TempDir(), Buckets: []string{"bkt"}})
	defer srv.Close()
	ctx := context.Background()
	const size = 256 << 10
	body := func(gen int) []byte { return bytes.Repeat([]byte{byte('a' + gen%26)}, size) }
	for i := 0; i < 4; i++ {
		_, err := st.Put(ctx, fmt.Sprint("obj", i), bytes.NewReader(body(0)), size, s3.WriteOptions{})
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for gen := 1; gen < 15; gen++ {
				data := append(body(gen), bytes.Repeat([]byte("grow"), gen*1024)...) // grow the file
				if _, err := st.Put(ctx, fmt.Sprint("obj", gen%4), bytes.NewReader(data), int64(len(data)), s3.WriteOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				rc, _, err := st.Get(ctx, fmt.Sprint("obj", i%4), int64(i*1000), 4096, "")
				if err != nil {
					errs <- err
					return
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					errs <- err
					return
				}
				if len(data) != 4096 || !bytes.Equal(data, bytes.Repeat(data[:1], len(data))) {
					errs <- fmt.Errorf("torn read: %d bytes, %q...", len(data), data[:min(16, len(data))])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// An object handed out by the backend must stay valid after later writes. s3bolt's
// objects point into bbolt's mmap, which a growing write unmaps: without the wrapper's
// copies this reads garbage or dies with SIGBUS (as gofakes3's CopyObject helper did).
func TestBackendObjectsOutliveWrites(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{Dir: t.TempDir(), Buckets: []string{"bkt"}})
	require.NoError(t, err)
	defer srv.Close()
	be := srv.Backend()
	want := bytes.Repeat([]byte("keep me "), 1024)
	_, err = be.PutObject("bkt", "a", nil, bytes.NewReader(want), int64(len(want)), nil)
	require.NoError(t, err)
	obj, err := be.GetObject("bkt", "a", nil)
	require.NoError(t, err)
	head, err := be.HeadObject("bkt", "a")
	require.NoError(t, err)
	hash := append([]byte(nil), head.Hash...)

	big := bytes.Repeat([]byte{'x'}, 1<<20)
	for i := 0; i < 40; i++ {
		_, err = be.PutObject("bkt", fmt.Sprint("big", i), nil, bytes.NewReader(big), int64(len(big)), nil)
		require.NoError(t, err)
	}
	got, err := io.ReadAll(obj.Contents)
	require.NoError(t, err)
	require.NoError(t, obj.Contents.Close())
	require.Equal(t, want, got)
	require.Equal(t, hash, obj.Hash)
	require.Equal(t, hash, head.Hash)
}

// A prefix's neighbours in byte order (more of them than one backend batch) must neither
// hide its keys nor leak into its listing, for every page size and with or without a
// delimiter: the listing seeks to just before the prefix and stops past its range.
func TestListSeeksToPrefixAndStopsAfterIt(t *testing.T) {
	srv, st := start(t, embedded.Options{Buckets: []string{"bkt"}})
	defer srv.Close()
	ctx := context.Background()
	var keys []string
	for i := 0; i < 1100; i++ {
		keys = append(keys, fmt.Sprintf("dir.%04d", i)) // '.' sorts just before '/'
	}
	under := []string{"dir/", "dir/a", "dir/b/c", "dir/b/d", "dir/c"}
	keys = append(keys, "dir", "dir0", "dis", "di")
	keys = append(keys, under...)
	for _, k := range keys {
		_, err := st.Put(ctx, k, bytes.NewReader(nil), 0, s3.WriteOptions{})
		require.NoError(t, err)
	}
	for _, tc := range []struct {
		delim string
		want  []string
	}{
		{"", under},
		{"/", []string{"dir/", "dir/a", "dir/b/", "dir/c"}},
	} {
		for _, maxKeys := range []int{1, 2, 3, 1000} {
			var got []string
			token := ""
			for {
				page, err := st.List(ctx, s3.ListInput{Prefix: "dir/", Delimiter: tc.delim, MaxKeys: maxKeys, ContinuationToken: token})
				require.NoError(t, err)
				for _, o := range page.Objects {
					got = append(got, o.Key)
				}
				got = append(got, page.CommonPrefixes...)
				if token = page.NextContinuationToken; token == "" {
					break
				}
			}
			sort.Strings(got)
			require.Equal(t, tc.want, got, "delimiter %q, max-keys %d", tc.delim, maxKeys)
		}
	}
	page, err := st.List(ctx, s3.ListInput{Prefix: "dir/zz", MaxKeys: 1})
	require.NoError(t, err)
	require.Empty(t, page.Objects)
	require.Empty(t, page.NextContinuationToken)
}

// An upload whose body does not match the checksum or payload hash it was sent with is
// refused, as S3 refuses it, and nothing is stored (the fault campaign found a corrupted
// upload stored whole before the embedded server checked them).
func TestDamagedUploadRefused(t *testing.T) {
	srv, st := start(t, embedded.Options{Buckets: []string{"bkt"}})
	defer srv.Close()
	for _, h := range []struct{ name, value string }{
		{"X-Amz-Checksum-Crc32c", "AAAAAA=="},
		{"X-Amz-Content-Sha256", "0000000000000000000000000000000000000000000000000000000000000000"},
		{"Content-MD5", "AAAAAAAAAAAAAAAAAAAAAA=="},
	} {
		req, err := http.NewRequest(http.MethodPut, srv.URL()+"/bkt/damaged", bytes.NewReader([]byte("the body as it arrived")))
		require.NoError(t, err)
		req.Header.Set(h.name, h.value)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", h.name, body)
		_, err = st.Head(context.Background(), "damaged")
		require.ErrorIs(t, err, s3.ErrNotFound, "%s: nothing is stored", h.name)
	}
	// The same body with its right checksum is stored.
	_, err := st.Put(context.Background(), "whole", bytes.NewReader([]byte("x")), 1, s3.WriteOptions{Checksum: "crc32c"})
	require.NoError(t, err)
}

// unreadable fails any read: a refused object must be refused before its body is read.
type unreadable struct{}

func (unreadable) Read([]byte) (int, error) { return 0, fmt.Errorf("the body was read") }

// The on-disk store keeps objects of up to about 2 GiB (one bbolt value each). A bigger one,
// as a PUT or as the completion of a multipart upload, is refused at once with a 400 whose
// message says the limit and what to use instead, not a 500 a client retries; the in-memory
// store has no such limit.
func TestDiskStoreRefusesObjectsItCannotKeep(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{Dir: t.TempDir(), Buckets: []string{"bkt"}})
	require.NoError(t, err)
	defer srv.Close()
	_, err = srv.Backend().PutObject("bkt", "big", map[string]string{}, unreadable{}, 2<<30, nil)
	require.Error(t, err)
	require.True(t, gofakes3.HasErrorCode(err, gofakes3.ErrInvalidArgument), "%v", err)
	require.Equal(t, http.StatusBadRequest, gofakes3.ErrInvalidArgument.Status())
	require.Contains(t, err.Error(), "up to 2047 MiB")
	require.Contains(t, err.Error(), "MinIO")

	// Just below the limit is only read (this reader then fails it), not refused.
	_, err = srv.Backend().PutObject("bkt", "big", map[string]string{}, unreadable{}, 2<<30-1<<20, nil)
	require.ErrorContains(t, err, "the body was read")

	mem, err := embedded.Start(embedded.Options{Buckets: []string{"bkt"}})
	require.NoError(t, err)
	defer mem.Close()
	_, err = mem.Backend().PutObject("bkt", "big", map[string]string{}, unreadable{}, 2<<30, nil)
	require.ErrorContains(t, err, "the body was read")
}
