// Package s3 owns the product's only door to the network: the Store interface, its
// aws-sdk-go-v2 implementation, and decorators that wrap a Store (retries, fault injection).
//
// Everything above this package talks to buckets through Store and nothing else. Errors are
// normalised once, here, into the typed errors below, so callers test them with errors.Is and
// never look at SDK types.
package s3

import (
	"context"
	"errors"
	"io"
	"mime"
	"path"
	"strings"
	"time"
)

// Typed errors every Store returns. Add one only if any S3-compatible store could produce it.
var (
	// ErrNotFound: the key (or upload id) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNoSuchBucket: the bucket does not exist.
	ErrNoSuchBucket = errors.New("no such bucket")
	// ErrAccessDenied: credentials were refused or lack permission.
	ErrAccessDenied = errors.New("access denied")
	// ErrPreconditionFailed: an If-Match / If-None-Match condition did not hold.
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrInvalidRange: a ranged read started at or beyond the end of a non-empty object.
	ErrInvalidRange = errors.New("invalid range")
	// ErrThrottled: the store asked us to slow down and retries were exhausted.
	ErrThrottled = errors.New("throttled")
	// ErrInvalidKey: the store refuses the key as a name (S3 takes any key up to 1,024
	// bytes; MinIO and stores built on a file system refuse components over 255 bytes, "."
	// and "..", empty components and invalid UTF-8).
	ErrInvalidKey = errors.New("the store refuses this key name")
)

// ObjectInfo describes one object as Head, Get, List or a write returned it.
// Fields a given call does not return are zero (List returns no Metadata).
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string // quoted, as S3 sends it
	LastModified time.Time
	StorageClass string
	VersionID    string
	Metadata     map[string]string // user metadata, lower-case names without "x-amz-meta-"
	ContentType  string
}

// NormalizeETag returns an ETag in the one form the product compares and sends back as
// If-Match: quoted, as S3 sends it. Some S3-compatible stores answer some calls unquoted.
func NormalizeETag(etag string) string {
	etag = strings.TrimSpace(etag)
	if etag == "" || strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/"`) {
		return etag
	}
	return `"` + etag + `"`
}

// ListInput is one ListObjectsV2 page request.
type ListInput struct {
	Prefix            string
	Delimiter         string // "" for a flat listing, "/" for a directory listing
	StartAfter        string
	ContinuationToken string
	MaxKeys           int // 0 means the store's default (1000)
}

// ListPage is one page of a listing. Objects and CommonPrefixes are each in byte order of the
// full key. NextContinuationToken is empty on the last page.
type ListPage struct {
	Objects               []ObjectInfo
	CommonPrefixes        []string // full keys, ending in the delimiter
	NextContinuationToken string
}

// WriteOptions are passed through on Put, CreateMultipart and Copy.
type WriteOptions struct {
	Metadata     map[string]string // user metadata
	ContentType  string
	StorageClass string
	SSE          string // "", "aws:kms", "aws:kms:dsse" or "AES256"
	SSEKMSKeyID  string
	Checksum     string // "" (off) or "crc32c"
	IfMatch      string // write only if the current ETag equals this
	IfNoneMatch  string // "*": write only if no object exists
	// SourceIfMatch, on Copy only: copy only if the source's ETag equals this
	// (x-amz-copy-source-if-match), so a copy never takes a version the caller did not see.
	SourceIfMatch string
}

// CompletedPart names one uploaded part of a multipart upload.
type CompletedPart struct {
	Number int32
	ETag   string
	// CRC32C is the base64 part checksum when the upload asked for crc32c checksums.
	CRC32C string
}

// Upload is one in-progress multipart upload.
type Upload struct {
	Key       string
	UploadID  string
	Initiated time.Time
}

// Store is the contract the rest of the product relies on.
//
// All methods are safe for concurrent use. Every method honours ctx cancellation. Errors wrap
// one of the typed errors above where one applies (test with errors.Is) and carry the operation
// and key in their message.
//
// Visibility: a successful Put, CompleteMultipart, Copy or Delete is visible to every later
// Head, Get and List (S3 is strongly consistent; stores that are not are out of scope).
type Store interface {
	// Bucket returns the bucket name this store reads and writes.
	Bucket() string

	// Head returns the object's info including user metadata. ErrNotFound if absent.
	Head(ctx context.Context, key string) (ObjectInfo, error)

	// Get returns a reader for bytes [offset, offset+length) of the object, or to the end when
	// length < 0. The range is clipped at the end of the object. If ifMatch is not empty the
	// read fails with ErrPreconditionFailed when the object's ETag differs (so one reader never
	// mixes two versions). The caller closes the reader. Reading an empty object at offset 0
	// returns an empty body; an offset at or beyond the end of a non-empty object is
	// ErrInvalidRange.
	Get(ctx context.Context, key string, offset, length int64, ifMatch string) (io.ReadCloser, ObjectInfo, error)

	// Put writes a whole object from body (size bytes; body may be re-read from the start on
	// retry).
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts WriteOptions) (ObjectInfo, error)

	// CreateMultipart starts a multipart upload and returns its id.
	CreateMultipart(ctx context.Context, key string, opts WriteOptions) (string, error)
	// UploadPart uploads part number (1-based) of an upload. data is not retained.
	UploadPart(ctx context.Context, key, uploadID string, number int32, data []byte, checksum string) (CompletedPart, error)
	// UploadPartCopy makes part number (1-based) of an upload from bytes [first, last] (both
	// inclusive) of the object src in the same bucket, server-side. If srcIfMatch is not empty
	// the copy fails with ErrPreconditionFailed when src's ETag differs, so parts copied at
	// different times all come from one version. ErrNotFound if src or the upload is gone.
	UploadPartCopy(ctx context.Context, key, uploadID string, number int32, src string, first, last int64, srcIfMatch string) (CompletedPart, error)
	// CompleteMultipart assembles the parts, in the order given, into the object.
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []CompletedPart, opts WriteOptions) (ObjectInfo, error)
	// AbortMultipart discards an upload and its parts. Aborting an unknown upload is not an error.
	AbortMultipart(ctx context.Context, key, uploadID string) error
	// ListMultipartUploads lists in-progress uploads whose key starts with prefix.
	ListMultipartUploads(ctx context.Context, prefix string) ([]Upload, error)

	// Copy copies src to dst within the bucket. With opts.Metadata non-nil the metadata is
	// replaced, otherwise it is copied from src. opts.SourceIfMatch makes it conditional on
	// the source's ETag. S3 refuses sources over 5 GiB: CopyLarge copies any size.
	Copy(ctx context.Context, src, dst string, opts WriteOptions) (ObjectInfo, error)

	// Delete removes the object. Deleting a missing key is not an error (as in S3).
	Delete(ctx context.Context, key string) error

	// List returns one page of a ListObjectsV2 listing.
	List(ctx context.Context, in ListInput) (ListPage, error)
}

// ContentTypeFor is the media type of key inferred from its extension (--infer-content-type),
// or "" if the extension says nothing, which leaves the store's default.
func ContentTypeFor(key string) string {
	return mime.TypeByExtension(path.Ext(key))
}
