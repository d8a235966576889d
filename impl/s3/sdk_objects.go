package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Head implements Store.
func (s *SDKStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return ObjectInfo{}, mapError("HeadObject", key, err)
	}
	return ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
		StorageClass: string(out.StorageClass),
		VersionID:    aws.ToString(out.VersionId),
		Metadata:     lowerKeys(out.Metadata),
		ContentType:  aws.ToString(out.ContentType),
	}, nil
}

// Get implements Store.
func (s *SDKStore) Get(ctx context.Context, key string, offset, length int64, ifMatch string) (io.ReadCloser, ObjectInfo, error) {
	if offset < 0 {
		return nil, ObjectInfo{}, fmt.Errorf("s3 GetObject %q: negative offset %d", key, offset)
	}
	if length == 0 {
		// "bytes=N-(N-1)" is not a valid range; answer from a HEAD with the same
		// checks a GET would make.
		info, err := s.Head(ctx, key)
		if err != nil {
			return nil, ObjectInfo{}, err
		}
		if ifMatch != "" && info.ETag != ifMatch {
			return nil, ObjectInfo{}, fmt.Errorf("s3 GetObject %q: %w (etag %s, want %s)", key, ErrPreconditionFailed, info.ETag, ifMatch)
		}
		if offset > 0 && offset >= info.Size {
			return nil, ObjectInfo{}, fmt.Errorf("s3 GetObject %q: %w (offset %d, size %d)", key, ErrInvalidRange, offset, info.Size)
		}
		return io.NopCloser(strings.NewReader("")), info, nil
	}

	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	// A whole-object read sends no Range: S3 answers any Range on an empty object with 416.
	if offset > 0 || length > 0 {
		if length > 0 {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
		} else {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
		}
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil && offset == 0 && in.Range != nil && errors.Is(classify(err), ErrInvalidRange) {
		// The object is empty: a 0-based range on it is unsatisfiable, a plain GET is not.
		in.Range = nil
		out, err = s.client.GetObject(ctx, in)
	}
	if err != nil {
		return nil, ObjectInfo{}, mapError("GetObject", key, err)
	}

	info := ObjectInfo{
		Key:          key,
		Size:         objectSize(out.ContentRange, aws.ToInt64(out.ContentLength)),
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
		StorageClass: string(out.StorageClass),
		VersionID:    aws.ToString(out.VersionId),
		Metadata:     lowerKeys(out.Metadata),
		ContentType:  aws.ToString(out.ContentType),
	}
	body := out.Body
	if in.Range == nil && length > 0 {
		// The empty-object fallback raced with a writer and fetched a whole, non-empty
		// object; never hand back more than was asked for.
		body = limitedReadCloser{io.LimitReader(body, length), body}
	}
	return body, info, nil
}

type limitedReadCloser struct {
	io.Reader
	io.Closer
}

// objectSize is the full object size: the total in "bytes a-b/total" for a ranged
// response, else the body length.
func objectSize(contentRange *string, contentLength int64) int64 {
	cr := aws.ToString(contentRange)
	if i := strings.LastIndexByte(cr, '/'); i >= 0 {
		if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
			return n
		}
	}
	return contentLength
}

// Put implements Store.
func (s *SDKStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts WriteOptions) (ObjectInfo, error) {
	w := opts.fields()
	in := &s3.PutObjectInput{
		Bucket:               &s.bucket,
		Key:                  &key,
		Body:                 body,
		ContentLength:        aws.Int64(size),
		Metadata:             opts.Metadata,
		ContentType:          w.contentType,
		StorageClass:         w.storageClass,
		ServerSideEncryption: w.sse,
		SSEKMSKeyId:          w.sseKMSKeyID,
		ChecksumAlgorithm:    w.checksum,
		IfMatch:              optional(opts.IfMatch),
		IfNoneMatch:          optional(opts.IfNoneMatch),
	}
	if w.checksum == "" {
		sum, err := contentMD5(body)
		if err != nil {
			return ObjectInfo{}, fmt.Errorf("s3 PutObject %q: reading the body for its MD5: %w", key, err)
		}
		in.ContentMD5 = &sum
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return ObjectInfo{}, mapError("PutObject", key, err)
	}
	return written(key, size, out.ETag, out.VersionId, opts), nil
}

// writeFields are the request fields a write takes from WriteOptions, unset where the option
// is empty (the SDK leaves an empty enum out of the request).
type writeFields struct {
	contentType, sseKMSKeyID *string
	storageClass             types.StorageClass
	sse                      types.ServerSideEncryption
	checksum                 types.ChecksumAlgorithm // CRC32C, or none: PutObject then sends Content-MD5
}

func (o WriteOptions) fields() writeFields {
	w := writeFields{contentType: optional(o.ContentType), sseKMSKeyID: optional(o.SSEKMSKeyID),
		storageClass: types.StorageClass(o.StorageClass), sse: types.ServerSideEncryption(o.SSE)}
	if o.Checksum == "crc32c" {
		w.checksum = types.ChecksumAlgorithmCrc32c
	}
	return w
}

// optional is s for a request field, nil (not sent) if empty.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// written is what a completed PutObject or CompleteMultipartUpload made: the store answers
// with the ETag and version; the rest is what was sent.
func written(key string, size int64, etag, versionID *string, opts WriteOptions) ObjectInfo {
	return ObjectInfo{
		Key:          key,
		Size:         size,
		ETag:         aws.ToString(etag),
		VersionID:    aws.ToString(versionID),
		StorageClass: opts.StorageClass,
		Metadata:     lowerKeys(opts.Metadata),
		ContentType:  opts.ContentType,
	}
}

// contentMD5 is the base64 MD5 of body's bytes, for Content-MD5, and seeks body back to its
// start. Every store checks it (BadDigest), so a body damaged between here and the store is
// refused instead of stored; the retryer then sends it again.
func contentMD5(body io.ReadSeeker) (string, error) {
	h := md5.New()
	if _, err := io.Copy(h, body); err != nil {
		return "", err
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// Copy implements Store. The returned info has ETag and LastModified only.
func (s *SDKStore) Copy(ctx context.Context, src, dst string, opts WriteOptions) (ObjectInfo, error) {
	w := opts.fields()
	in := &s3.CopyObjectInput{
		Bucket:               &s.bucket,
		Key:                  &dst,
		CopySource:           aws.String(escapeCopySource(s.bucket + "/" + src)),
		StorageClass:         w.storageClass,
		ServerSideEncryption: w.sse,
		SSEKMSKeyId:          w.sseKMSKeyID,
		ChecksumAlgorithm:    w.checksum,
		CopySourceIfMatch:    optional(opts.SourceIfMatch),
	}
	if opts.Metadata != nil {
		in.MetadataDirective = types.MetadataDirectiveReplace
		in.Metadata = opts.Metadata
		in.ContentType = w.contentType
	}
	out, err := s.client.CopyObject(ctx, in)
	if err != nil {
		return ObjectInfo{}, mapError("CopyObject", src+" -> "+dst, err)
	}
	info := ObjectInfo{Key: dst, VersionID: aws.ToString(out.VersionId)}
	if r := out.CopyObjectResult; r != nil {
		info.ETag = aws.ToString(r.ETag)
		info.LastModified = aws.ToTime(r.LastModified)
	}
	return info, nil
}

// escapeCopySource percent-encodes everything but unreserved characters and "/". S3
// URL-decodes x-amz-copy-source, so a literal "+", "%" or space in a key would otherwise
// name a different object.
func escapeCopySource(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// Delete implements Store.
func (s *SDKStore) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if errors.Is(classify(err), ErrNotFound) {
			return nil // some S3-compatible stores answer 404 where S3 answers 204
		}
		return mapError("DeleteObject", key, err)
	}
	return nil
}

// List implements Store.
func (s *SDKStore) List(ctx context.Context, in ListInput) (ListPage, error) {
	req := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: optional(in.Prefix), Delimiter: optional(in.Delimiter),
		StartAfter: optional(in.StartAfter), ContinuationToken: optional(in.ContinuationToken)}
	if in.MaxKeys > 0 {
		req.MaxKeys = aws.Int32(int32(min(in.MaxKeys, 1000)))
	}
	out, err := s.client.ListObjectsV2(ctx, req)
	if err != nil {
		return ListPage{}, mapError("ListObjectsV2", in.Prefix, err)
	}
	page := ListPage{Objects: make([]ObjectInfo, 0, len(out.Contents))}
	for _, o := range out.Contents {
		page.Objects = append(page.Objects, ObjectInfo{
			Key:          aws.ToString(o.Key),
			Size:         aws.ToInt64(o.Size),
			ETag:         aws.ToString(o.ETag),
			LastModified: aws.ToTime(o.LastModified),
			StorageClass: string(o.StorageClass),
		})
	}
	for _, p := range out.CommonPrefixes {
		page.CommonPrefixes = append(page.CommonPrefixes, aws.ToString(p.Prefix))
	}
	if aws.ToBool(out.IsTruncated) {
		page.NextContinuationToken = aws.ToString(out.NextContinuationToken)
	}
	return page, nil
}

// lowerKeys normalises user-metadata names: HTTP header names are case-insensitive and
// stores differ in the case they hand back.
func lowerKeys(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}
