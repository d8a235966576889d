// Package storetest owns the Store conformance suite: the behaviour of s3.Store that the
// rest of the product relies on, pinned once and run against every implementation (the
// SDK store over the embedded server, and over a real bucket when one is configured).
//
// Every test works under its own unique key prefix and cleans up after itself, so the
// suite can share a real bucket with other runs.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// Quirks are the known ways an S3-compatible store differs from S3 that the suite allows, each
// recorded in docs/STORES.md with what the product does about it. The zero value is S3.
type Quirks struct {
	// FileKeyNames: keys a file system cannot hold (an empty component, ".", "..", a
	// component over 255 bytes) are refused with s3.ErrInvalidKey (MinIO).
	FileKeyNames bool
	// ObjectShadowsPrefix: an object "a" hides the keys below "a/" from listings, though
	// they can be read (MinIO keeps both as one path of its file system).
	ObjectShadowsPrefix bool
	// UploadsByExactKey: ListMultipartUploads finds uploads only with an empty prefix or the
	// upload's exact key (MinIO).
	UploadsByExactKey bool
	// NoPartCopyWithChecksum: UploadPartCopy into an upload created with a checksum algorithm
	// fails (MinIO); CopyLarge creates its uploads without one.
	NoPartCopyWithChecksum bool
	// KeepsVersions: a Get with If-Match on a version the object no longer is may still be
	// served, with that version's bytes (a cache keyed by ETag, impl/cache), where S3 fails
	// with ErrPreconditionFailed. Either way a read never gets another version's bytes.
	KeepsVersions bool
}

// QuirksOf returns the quirks of a store by name: "minio", or "" / "s3" for none.
func QuirksOf(store string) Quirks {
	if store == "minio" {
		return Quirks{FileKeyNames: true, ObjectShadowsPrefix: true, UploadsByExactKey: true, NoPartCopyWithChecksum: true}
	}
	return Quirks{}
}

// Run runs the whole suite. newStore is called once per test and may return a store on a
// fresh bucket or a shared one.
func Run(t *testing.T, newStore func(t *testing.T) s3.Store) { RunQuirks(t, Quirks{}, newStore) }

// RunQuirks runs the whole suite on a store with the given quirks.
func RunQuirks(t *testing.T, q Quirks, newStore func(t *testing.T) s3.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c *Case)
	}{
		{"PutHeadGet", testPutHeadGet},
		{"OverwriteReplacesMetadata", testOverwriteReplacesMetadata},
		{"GetRanges", testGetRanges},
		{"EmptyObject", testEmptyObject},
		{"NotFound", testNotFound},
		{"ListOrderAndDelimiter", testListOrderAndDelimiter},
		{"ListPagination", testListPagination},
		{"ListStartAfter", testListStartAfter},
		{"Multipart", testMultipart},
		{"MultipartAbort", testMultipartAbort},
		{"UploadPartCopy", testUploadPartCopy},
		{"ListMultipartUploadsEmpty", testListUploadsEmpty},
		{"Copy", testCopy},
		{"ConditionalPut", testConditionalPut},
		{"GetIfMatch", testGetIfMatch},
		{"Checksum", testChecksum},
		{"OddKeys", testOddKeys},
		{"Canceled", testCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			c := &Case{T: t, S: st, Prefix: uniquePrefix(t), Quirks: q}
			t.Cleanup(c.cleanup)
			tc.fn(t, c)
		})
	}
}

// Case is one test's store, key prefix and helpers.
type Case struct {
	T      *testing.T
	S      s3.Store
	Prefix string
	Quirks Quirks
}

// uploadsPrefix is the prefix that lists the uploads of key: the test's prefix, or the key
// itself on a store that lists uploads by exact key only.
func (c *Case) uploadsPrefix(key string) string {
	if c.Quirks.UploadsByExactKey {
		return key
	}
	return c.Prefix
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func uniquePrefix(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "storetest/" + unsafeName.ReplaceAllString(t.Name(), "_") + "-" + hex.EncodeToString(b[:]) + "/"
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// K is the full key for name under the test's prefix.
func (c *Case) K(name string) string { return c.Prefix + name }

// Put writes data at name and returns the info.
func (c *Case) Put(name string, data []byte, opts s3.WriteOptions) s3.ObjectInfo {
	c.T.Helper()
	info, err := c.S.Put(ctx(c.T), c.K(name), bytes.NewReader(data), int64(len(data)), opts)
	require.NoError(c.T, err, "put %q", name)
	require.NotEmpty(c.T, info.ETag, "put %q returned no ETag", name)
	return info
}

// Read reads [off, off+n) of name.
func (c *Case) Read(name string, off, n int64, ifMatch string) ([]byte, s3.ObjectInfo, error) {
	c.T.Helper()
	rc, info, err := c.S.Get(ctx(c.T), c.K(name), off, n, ifMatch)
	if err != nil {
		return nil, info, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return data, info, err
}

// MustRead is Read that fails the test on error.
func (c *Case) MustRead(name string, off, n int64) []byte {
	c.T.Helper()
	data, _, err := c.Read(name, off, n, "")
	require.NoError(c.T, err, "get %q [%d,+%d)", name, off, n)
	return data
}

// ListAll follows every page of a listing and returns objects (relative names) and
// common prefixes (relative), checking no page exceeds maxKeys.
func (c *Case) ListAll(in s3.ListInput) (objects, prefixes []string, pages int) {
	c.T.Helper()
	for {
		page, err := c.S.List(ctx(c.T), in)
		require.NoError(c.T, err)
		pages++
		if in.MaxKeys > 0 {
			require.LessOrEqual(c.T, len(page.Objects)+len(page.CommonPrefixes), in.MaxKeys, "page %d too big", pages)
		}
		for _, o := range page.Objects {
			objects = append(objects, strings.TrimPrefix(o.Key, c.Prefix))
		}
		for _, p := range page.CommonPrefixes {
			prefixes = append(prefixes, strings.TrimPrefix(p, c.Prefix))
		}
		if page.NextContinuationToken == "" {
			return objects, prefixes, pages
		}
		require.Less(c.T, pages, 1000, "listing does not terminate")
		in.ContinuationToken = page.NextContinuationToken
	}
}

// RequireErr checks err wraps want and names the key, as the Store contract demands.
func RequireErr(t *testing.T, err, want error, key string) {
	t.Helper()
	require.Error(t, err)
	require.True(t, errors.Is(err, want), "error %q does not wrap %q", err, want)
	if key != "" {
		require.Contains(t, err.Error(), key, "error message lacks the key")
	}
}

// cleanup deletes what the test left under its prefix. Best effort: a failure here must
// not hide the test's own result.
func (c *Case) cleanup() {
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ups, err := c.S.ListMultipartUploads(cctx, c.Prefix); err == nil {
		for _, u := range ups {
			_ = c.S.AbortMultipart(cctx, u.Key, u.UploadID)
		}
	}
	in := s3.ListInput{Prefix: c.Prefix}
	for {
		page, err := c.S.List(cctx, in)
		if err != nil {
			return
		}
		for _, o := range page.Objects {
			_ = c.S.Delete(cctx, o.Key)
		}
		if page.NextContinuationToken == "" {
			return
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// FileKeyOK reports whether a store with Quirks.FileKeyNames holds key: no empty component
// (nor a leading "/"), no "." or "..", no component over 255 bytes, no NUL, valid UTF-8. A
// trailing "/" (a directory marker) is allowed.
func FileKeyOK(key string) bool {
	if !utf8.ValidString(key) || strings.ContainsRune(key, 0) || strings.Contains(key, "//") || strings.HasPrefix(key, "/") {
		return false
	}
	for _, c := range strings.Split(strings.TrimSuffix(key, "/"), "/") {
		if c == "." || c == ".." || len(c) > 255 {
			return false
		}
	}
	return true
}
