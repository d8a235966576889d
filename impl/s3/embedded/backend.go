package embedded

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// metaKey holds an object's whole metadata map, JSON-encoded, inside the inner backend.
//
// gofakes3's bundled backends merge the previous object's metadata into every PutObject
// (gofakes3.MergeMetadata), so overwriting an object without a header it had before keeps
// the old value. S3 replaces metadata on every write. With the map in a single entry the
// merge can only ever carry over that one entry, which the new write always sets.
const metaKey = "X-Mounts3-Metadata"

// storedHeaders says which request headers gofakes3 hands the backend are object
// metadata. gofakes3 passes every X-Amz-* request header (date, content sha256, copy
// source, ...) and would echo them all back on GET.
func storedHeader(name string) bool {
	n := http.CanonicalHeaderKey(name)
	switch {
	case strings.HasPrefix(n, "X-Amz-Meta-"),
		strings.HasPrefix(n, "X-Amz-Server-Side-Encryption"),
		strings.HasPrefix(n, "X-Amz-Checksum-") && n != "X-Amz-Checksum-Algorithm",
		n == "X-Amz-Storage-Class",
		n == "X-Amz-Website-Redirect-Location",
		n == "Content-Type", n == "Content-Disposition", n == "Content-Encoding",
		n == "Content-Language", n == "Cache-Control", n == "Expires",
		n == "Last-Modified":
		return true
	}
	return false
}

// backend wraps a gofakes3 Backend to give S3's write semantics: metadata is replaced,
// not merged, and every object has a Last-Modified (objects put through the Backend API
// directly would otherwise have none, and HEAD/GET would lack the header).
//
// It also makes s3bolt safe to use concurrently. s3bolt decodes objects with mgo's bson,
// whose []byte fields alias bbolt's mmap, and hands them out after the read transaction
// has ended; a concurrent write that grows or reuses pages then turns a GET's body or
// ETag into garbage or a SIGBUS. So every read copies what it returns while holding mu,
// and every write holds mu exclusively. Bodies are read from the network before taking
// mu, so a slow upload never stalls readers.
//
// It deliberately does not implement gofakes3.VersionedBackend: the product does not use
// versions, and an unversioned bucket is what most users mount.
type backend struct {
	gofakes3.Backend
	now func() time.Time
	mu  sync.RWMutex
	// copyReads is set for s3bolt. s3mem's slices are never mutated once stored, so
	// its reads are handed out as they are (no per-GET copy).
	copyReads bool
	// maxObject is the largest object the store keeps (0: no limit).
	maxObject int64
}

// maxBoltObject is the largest object the on-disk store keeps: s3bolt stores an object as one
// bbolt value, which bbolt caps just below 2 GiB. A bigger one failed with a 500 that clients
// retried ten times before the close of a 2 GiB file failed with EIO and no cause; it is
// refused at once (400) with one that says what to do.
const maxBoltObject = 2<<30 - 1<<20

// tooLarge is the answer to an object bigger than the store keeps.
func tooLarge(size, max int64) error {
	return gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, fmt.Sprintf(
		"EntityTooLarge: the embedded store (--embedded-store) keeps objects of up to %d MiB and this one is %d MiB; "+
			"keep bigger files in S3 or an S3-compatible server such as MinIO (--endpoint-url)", max>>20, (size+1<<20-1)>>20))
}

func (b *backend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	if b.maxObject > 0 && size > b.maxObject {
		return gofakes3.PutObjectResult{}, tooLarge(size, b.maxObject)
	}
	data, err := gofakes3.ReadAll(input, size)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.PutObject(bucket, key, b.encode(meta), bytes.NewReader(data), size, cond)
}

func (b *backend) encode(meta map[string]string) map[string]string {
	kept := make(map[string]string, len(meta)+1)
	for k, v := range meta {
		if storedHeader(k) {
			kept[http.CanonicalHeaderKey(k)] = v
		}
	}
	if kept["Last-Modified"] == "" {
		kept["Last-Modified"] = b.now().UTC().Format(http.TimeFormat)
	}
	enc, _ := json.Marshal(kept) // a map[string]string always marshals
	return map[string]string{metaKey: string(enc)}
}

// decode undoes encode. Objects stored without the wrapper (an older database) pass
// through unchanged.
func decode(obj *gofakes3.Object) *gofakes3.Object {
	if obj == nil {
		return nil
	}
	enc, ok := obj.Metadata[metaKey]
	if !ok {
		return obj
	}
	meta := map[string]string{}
	_ = json.Unmarshal([]byte(enc), &meta)
	obj.Metadata = meta
	return obj
}

func (b *backend) GetObject(bucket, key string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	obj, err := b.Backend.GetObject(bucket, key, rng)
	if err != nil || !b.copyReads {
		return decode(obj), err
	}
	// Copies only the requested range: s3bolt's decode itself does not copy.
	data, err := io.ReadAll(obj.Contents)
	obj.Contents.Close()
	if err != nil {
		return nil, err
	}
	obj.Contents = io.NopCloser(bytes.NewReader(data))
	obj.Hash = bytes.Clone(obj.Hash)
	return decode(obj), nil
}

func (b *backend) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	obj, err := b.Backend.HeadObject(bucket, key)
	if err != nil {
		return nil, err
	}
	obj.Hash = bytes.Clone(obj.Hash)
	return decode(obj), nil
}

func (b *backend) ListBucket(bucket string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.Backend.ListBucket(bucket, prefix, page)
}

func (b *backend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteObject(bucket, key)
}

func (b *backend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteMulti(bucket, keys...)
}

func (b *backend) CreateBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.CreateBucket(name)
}

func (b *backend) DeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteBucket(name)
}

func (b *backend) ForceDeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.ForceDeleteBucket(name)
}

// CopyObject goes through this wrapper's Get and Put so the copy's metadata is encoded
// like any other write; meta is the destination's complete metadata.
func (b *backend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	meta = withoutLastModified(meta)
	res, err := gofakes3.CopyObject(b, srcBucket, srcKey, dstBucket, dstKey, meta)
	if err != nil {
		return res, err
	}
	if obj, herr := b.HeadObject(dstBucket, dstKey); herr == nil {
		obj.Contents.Close()
		res.ETag = gofakes3.FormatETag(obj.Hash)
		if t, perr := time.Parse(http.TimeFormat, obj.Metadata["Last-Modified"]); perr == nil {
			res.LastModified = gofakes3.NewContentTime(t)
		}
	}
	return res, nil
}

func withoutLastModified(meta map[string]string) map[string]string {
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		if http.CanonicalHeaderKey(k) != "Last-Modified" {
			out[k] = v
		}
	}
	return out
}
