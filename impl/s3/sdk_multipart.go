package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// CreateMultipart implements Store.
func (s *SDKStore) CreateMultipart(ctx context.Context, key string, opts WriteOptions) (string, error) {
	in := &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key, Metadata: opts.Metadata}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	if opts.StorageClass != "" {
		in.StorageClass = types.StorageClass(opts.StorageClass)
	}
	if opts.SSE != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(opts.SSE)
	}
	if opts.SSEKMSKeyID != "" {
		in.SSEKMSKeyId = aws.String(opts.SSEKMSKeyID)
	}
	if opts.Checksum == "crc32c" {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	}
	out, err := s.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return "", mapError("CreateMultipartUpload", key, err)
	}
	return aws.ToString(out.UploadId), nil
}

// UploadPart implements Store. checksum is "" or "crc32c", matching the upload's
// WriteOptions.Checksum.
func (s *SDKStore) UploadPart(ctx context.Context, key, uploadID string, number int32, data []byte, checksum string) (CompletedPart, error) {
	in := &s3.UploadPartInput{
		Bucket:        &s.bucket,
		Key:           &key,
		UploadId:      &uploadID,
		PartNumber:    aws.Int32(number),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if checksum == "crc32c" {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	} else {
		sum := md5.Sum(data)
		in.ContentMD5 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
	}
	out, err := s.client.UploadPart(ctx, in)
	if err != nil {
		return CompletedPart{}, mapError("UploadPart", fmt.Sprintf("%s#%d", key, number), err)
	}
	return CompletedPart{Number: number, ETag: aws.ToString(out.ETag), CRC32C: aws.ToString(out.ChecksumCRC32C)}, nil
}

// UploadPartCopy implements Store. The part's checksum comes back when the upload asked for
// one; there is nothing to send.
func (s *SDKStore) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, src string, first, last int64, srcIfMatch string) (CompletedPart, error) {
	what := fmt.Sprintf("%s#%d <- %s[%d-%d]", key, number, src, first, last)
	if first < 0 || last < first {
		return CompletedPart{}, fmt.Errorf("s3 UploadPartCopy %q: bad range", what)
	}
	in := &s3.UploadPartCopyInput{
		Bucket:          &s.bucket,
		Key:             &key,
		UploadId:        &uploadID,
		PartNumber:      aws.Int32(number),
		CopySource:      aws.String(escapeCopySource(s.bucket + "/" + src)),
		CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
	}
	if srcIfMatch != "" {
		in.CopySourceIfMatch = aws.String(srcIfMatch)
	}
	out, err := s.client.UploadPartCopy(ctx, in)
	if err != nil {
		return CompletedPart{}, mapError("UploadPartCopy", what, err)
	}
	part := CompletedPart{Number: number}
	if r := out.CopyPartResult; r != nil {
		part.ETag = aws.ToString(r.ETag)
		part.CRC32C = aws.ToString(r.ChecksumCRC32C)
	}
	if part.ETag == "" {
		return CompletedPart{}, fmt.Errorf("s3 UploadPartCopy %q: the answer has no ETag", what)
	}
	return part, nil
}

// CompleteMultipart implements Store. opts.IfMatch / IfNoneMatch make the completion
// conditional, as for Put.
func (s *SDKStore) CompleteMultipart(ctx context.Context, key, uploadID string, parts []CompletedPart, opts WriteOptions) (ObjectInfo, error) {
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
		if p.CRC32C != "" {
			done[i].ChecksumCRC32C = aws.String(p.CRC32C)
		}
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &key,
		UploadId:        &uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	}
	if opts.IfMatch != "" {
		in.IfMatch = aws.String(opts.IfMatch)
	}
	if opts.IfNoneMatch != "" {
		in.IfNoneMatch = aws.String(opts.IfNoneMatch)
	}
	out, err := s.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return ObjectInfo{}, mapError("CompleteMultipartUpload", key, err)
	}
	return ObjectInfo{
		Key:          key,
		ETag:         aws.ToString(out.ETag),
		VersionID:    aws.ToString(out.VersionId),
		StorageClass: opts.StorageClass,
		Metadata:     lowerKeys(opts.Metadata),
		ContentType:  opts.ContentType,
	}, nil
}

// AbortMultipart implements Store.
func (s *SDKStore) AbortMultipart(ctx context.Context, key, uploadID string) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: &uploadID})
	if err != nil {
		if errors.Is(classify(err), ErrNotFound) {
			return nil // already aborted or completed: the goal (no such upload) holds
		}
		return mapError("AbortMultipartUpload", key, err)
	}
	return nil
}

// ListMultipartUploads implements Store; it follows every page.
func (s *SDKStore) ListMultipartUploads(ctx context.Context, prefix string) ([]Upload, error) {
	in := &s3.ListMultipartUploadsInput{Bucket: &s.bucket}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	var uploads []Upload
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, mapError("ListMultipartUploads", prefix, err)
		}
		for _, u := range out.Uploads {
			uploads = append(uploads, Upload{
				Key:       aws.ToString(u.Key),
				UploadID:  aws.ToString(u.UploadId),
				Initiated: aws.ToTime(u.Initiated),
			})
		}
		if !aws.ToBool(out.IsTruncated) {
			return uploads, nil
		}
		next := aws.ToString(out.NextKeyMarker)
		nextID := aws.ToString(out.NextUploadIdMarker)
		if next == aws.ToString(in.KeyMarker) && nextID == aws.ToString(in.UploadIdMarker) {
			return uploads, nil // a store that never advances must not loop us forever
		}
		in.KeyMarker, in.UploadIdMarker = aws.String(next), aws.String(nextID)
	}
}
