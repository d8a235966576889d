package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// CreateMultipart implements Store.
func (s *SDKStore) CreateMultipart(ctx context.Context, key string, opts WriteOptions) (string, error) {
	w := opts.fields()
	in := &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key, Metadata: opts.Metadata,
		ContentType: w.contentType, StorageClass: w.storageClass, ServerSideEncryption: w.sse,
		SSEKMSKeyId: w.sseKMSKeyID, ChecksumAlgorithm: w.checksum}
	start := time.Now()
	var attempts atomic.Int32
	out, err := s.client.CreateMultipartUpload(withAttemptCount(ctx, &attempts), in)
	if err != nil {
		err = mapError("CreateMultipartUpload", key, err)
		if attempts.Load() > 0 && mayHaveCreated(err) {
			s.sweepCreates(ctx, key, "", start, time.Now(), false)
		}
		return "", err
	}
	if attempts.Load() > 1 {
		// An earlier attempt may have created an upload whose answer never came back.
		s.sweepCreates(ctx, key, aws.ToString(out.UploadId), start, time.Now(), true)
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
		IfMatch:         optional(opts.IfMatch),
		IfNoneMatch:     optional(opts.IfNoneMatch),
	}
	out, err := s.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return ObjectInfo{}, mapError("CompleteMultipartUpload", key, err)
	}
	return written(key, 0, out.ETag, out.VersionId, opts), nil
}

// mayHaveCreated: a failed create that the store may still have carried out (no answer, or
// a 5xx), as opposed to a refusal.
func mayHaveCreated(err error) bool {
	return !errors.Is(err, ErrAccessDenied) && !errors.Is(err, ErrNoSuchBucket) && !errors.Is(err, ErrInvalidKey)
}

// sweepCreates aborts the uploads of key, other than keep, that the store says were initiated
// during a CreateMultipart call that ran from start to end (local monotonic times) and needed
// more than one attempt: an attempt whose answer was lost (a reset, a timeout) may have
// created one, which nobody would ever complete or abort. The window is carried over to the
// store's clock through the listing's Date header, so the two clocks need not agree. Another
// writer's upload of the same key started within the call is the one thing it could also
// catch, and that writer is racing this one for the key anyway. After a failed create
// (wait false) it all happens in the background: the store is often down then, and the caller
// must not wait on top of its retries; a sweep that cannot list is tried again for up to
// cleanupPatience.
func (s *SDKStore) sweepCreates(ctx context.Context, key, keep string, start, end time.Time, wait bool) {
	try := func() bool { return s.sweep(context.Background(), key, keep, start, end) }
	if wait && s.sweep(ctx, key, keep, start, end) {
		return
	}
	inBackground(try, !wait)
}

// cleanupPatience bounds how long a cleanup (a sweep, an abort) is retried in the background;
// a bucket lifecycle rule (AbortIncompleteMultipartUpload) is the backstop for anything older.
const cleanupPatience = 30 * time.Minute

// maxCleanups bounds the cleanups retrying at once; more are left to the lifecycle rule.
const maxCleanups = 256

var cleanups = make(chan struct{}, maxCleanups)

// inBackground retries try, with a backoff of up to 30 s, until it reports success or
// cleanupPatience has passed; now says whether to try at once. For cleanups that must not be
// given up because the store is down for a while, and that no caller waits for.
func inBackground(try func() bool, now bool) {
	select {
	case cleanups <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-cleanups }()
		if now && try() {
			return
		}
		backoff := time.Second
		for deadline := time.Now().Add(cleanupPatience); time.Now().Before(deadline); backoff = min(2*backoff, 30*time.Second) {
			time.Sleep(backoff)
			if try() {
				return
			}
		}
	}()
}

// sweep is one try of sweepCreates; false if the uploads could not be listed.
func (s *SDKStore) sweep(ctx context.Context, key, keep string, start, end time.Time) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	listStart := time.Now()
	out, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: &key})
	if err != nil {
		// Not allowed to list uploads (a common policy): nothing this process can do.
		s.log.Warn("listing the uploads of a key to abort the one a lost answer left; will retry", "key", key, "error", err.Error())
		return permanent(classify(err))
	}
	local := time.Now()
	serverNow := local
	if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
		if d, err := http.ParseTime(raw.Header.Get("Date")); err == nil {
			serverNow = d
		}
	}
	// The store stamped Date, to the second, at some moment of the listing call, not
	// necessarily at its end: an answer held up on the way (a latency spike) arrives seconds
	// after its Date. So the call's window in the store's clock runs from start as early as
	// Date allows (stamped at the end of the listing) to end as late as it allows (stamped at
	// its start, a second later), with slack for the store's own rounding.
	from := serverNow.Add(-local.Sub(start) - 2*time.Second)
	to := serverNow.Add(2*time.Second - listStart.Sub(end))
	for _, u := range out.Uploads {
		id, at := aws.ToString(u.UploadId), aws.ToTime(u.Initiated)
		if aws.ToString(u.Key) != key || id == keep {
			continue
		}
		if at.Before(from) || at.After(to) {
			s.log.Debug("an upload of the key is not from this call; left alone", "key", key, "upload", id, "initiated", at, "from", from, "to", to)
			continue
		}
		s.log.Info("aborting a multipart upload a lost answer left behind", "key", key, "upload", id)
		s.AbortMultipart(ctx, key, id)
	}
	return true
}

// AbortMultipart implements Store. An abort the store does not take (it is down, it keeps
// failing) is also retried in the background for up to cleanupPatience: nothing else would
// ever abort the upload, and its parts would stay in the bucket.
func (s *SDKStore) AbortMultipart(ctx context.Context, key, uploadID string) error {
	err := s.abort(ctx, key, uploadID)
	if err != nil && !permanent(err) {
		inBackground(func() bool {
			err := s.abort(context.Background(), key, uploadID)
			return err == nil || permanent(err)
		}, false)
	}
	return err
}

// permanent: a refusal that retrying will not change (no permission, no bucket).
func permanent(err error) bool {
	return errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrNoSuchBucket)
}

func (s *SDKStore) abort(ctx context.Context, key, uploadID string) error {
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
