package engine

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// headChecked stands in for a store that ignores If-Match / If-None-Match on writes
// (Config.ConditionsUnsupported): right before each write that carries a condition it reads
// the key with HEAD and fails with s3.ErrPreconditionFailed if the condition does not hold,
// exactly as a store that honours it would answer (so the engine's conflict path, C3, runs
// unchanged); then it sends the write without the condition, since some of these stores
// refuse headers they do not know.
//
// The check and the write are two requests: a write by another client landing between them
// is overwritten without a conflict. The window is one request long (for a multipart upload,
// the CompleteMultipartUpload: the HEAD is repeated right before it). S3 has no conditional
// DeleteObject or copy source, so the engine already checks those with HEAD itself (delete,
// rename, copyInPlace); they pass through.
type headChecked struct {
	s3.Store
}

func (h headChecked) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	opts, err := h.check(ctx, "PutObject", key, opts)
	if err != nil {
		return s3.ObjectInfo{}, err
	}
	return h.Store.Put(ctx, key, body, size, opts)
}

// CreateMultipart checks too, though the write only lands at completion: an upload that is
// bound to conflict fails before its parts are sent.
func (h headChecked) CreateMultipart(ctx context.Context, key string, opts s3.WriteOptions) (string, error) {
	opts, err := h.check(ctx, "CreateMultipartUpload", key, opts)
	if err != nil {
		return "", err
	}
	return h.Store.CreateMultipart(ctx, key, opts)
}

func (h headChecked) CompleteMultipart(ctx context.Context, key, uploadID string, parts []s3.CompletedPart, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	opts, err := h.check(ctx, "CompleteMultipartUpload", key, opts)
	if err != nil {
		return s3.ObjectInfo{}, err
	}
	return h.Store.CompleteMultipart(ctx, key, uploadID, parts, opts)
}

func (h headChecked) Copy(ctx context.Context, src, dst string, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	opts, err := h.check(ctx, "CopyObject", dst, opts)
	if err != nil {
		return s3.ObjectInfo{}, err
	}
	return h.Store.Copy(ctx, src, dst, opts)
}

// check evaluates opts' condition against a HEAD of key and returns opts without it.
func (h headChecked) check(ctx context.Context, op, key string, opts s3.WriteOptions) (s3.WriteOptions, error) {
	if opts.IfMatch == "" && opts.IfNoneMatch == "" {
		return opts, nil
	}
	cond := opts
	opts.IfMatch, opts.IfNoneMatch = "", ""
	cur, err := h.Store.Head(ctx, key)
	found := err == nil
	if err != nil && !errors.Is(err, s3.ErrNotFound) {
		return opts, err
	}
	var fails string
	switch {
	case cond.IfNoneMatch != "" && found && (cond.IfNoneMatch == "*" || normETag(cur.ETag) == normETag(cond.IfNoneMatch)):
		fails = "If-None-Match: " + cond.IfNoneMatch + " (the object exists, etag " + cur.ETag + ")"
	case cond.IfMatch != "" && !found:
		fails = "If-Match: " + cond.IfMatch + " (no object)"
	case cond.IfMatch != "" && normETag(cur.ETag) != normETag(cond.IfMatch):
		fails = "If-Match: " + cond.IfMatch + " (the object's etag is " + cur.ETag + ")"
	default:
		return opts, nil
	}
	return opts, fmt.Errorf("s3 %s %q: %s, checked with HEAD as the store ignores conditions: %w",
		op, key, fails, s3.ErrPreconditionFailed)
}
