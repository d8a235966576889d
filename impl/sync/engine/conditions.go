package engine

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// headChecked stands in for a store that ignores conditional requests
// (Config.ConditionsUnsupported): right before each request that carries a condition (If-Match
// or If-None-Match on the written key, x-amz-copy-source-if-match on a copy's source) it reads
// the key with HEAD and fails as a store that honours the condition would answer, with
// s3.ErrPreconditionFailed (s3.ErrNotFound for a copy source that is gone), so the engine's
// conflict path (C3) runs unchanged; then it sends the request without the condition, since
// some of these stores refuse headers they do not know.
//
// The check and the request are two requests: a write by another client landing between them
// is overwritten (or copied) without a conflict. The window is one request long: for a
// multipart upload the HEAD is repeated right before CompleteMultipartUpload, for a multipart
// copy before each UploadPartCopy and the completion.
type headChecked struct {
	s3.Store
}

func (h headChecked) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	opts, err := h.check(ctx, "PutObject", "", key, opts)
	if err != nil {
		return s3.ObjectInfo{}, err
	}
	return h.Store.Put(ctx, key, body, size, opts)
}

// CreateMultipart checks too, though the write only lands at completion: an upload that is
// bound to conflict fails before its parts are sent.
func (h headChecked) CreateMultipart(ctx context.Context, key string, opts s3.WriteOptions) (string, error) {
	opts, err := h.check(ctx, "CreateMultipartUpload", "", key, opts)
	if err != nil {
		return "", err
	}
	return h.Store.CreateMultipart(ctx, key, opts)
}

func (h headChecked) CompleteMultipart(ctx context.Context, key, uploadID string, parts []s3.CompletedPart, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	opts, err := h.check(ctx, "CompleteMultipartUpload", "", key, opts)
	if err != nil {
		return s3.ObjectInfo{}, err
	}
	return h.Store.CompleteMultipart(ctx, key, uploadID, parts, opts)
}

func (h headChecked) Copy(ctx context.Context, src, dst string, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	opts, err := h.check(ctx, "CopyObject", src, dst, opts)
	if err != nil {
		return s3.ObjectInfo{}, err
	}
	return h.Store.Copy(ctx, src, dst, opts)
}

func (h headChecked) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, src string, first, last int64, srcIfMatch string) (s3.CompletedPart, error) {
	if _, err := h.check(ctx, "UploadPartCopy", src, key, s3.WriteOptions{SourceIfMatch: srcIfMatch}); err != nil {
		return s3.CompletedPart{}, err
	}
	return h.Store.UploadPartCopy(ctx, key, uploadID, number, src, first, last, "")
}

// check evaluates opts' conditions against a HEAD of key (and of src for SourceIfMatch) and
// returns opts without them.
func (h headChecked) check(ctx context.Context, op, src, key string, opts s3.WriteOptions) (s3.WriteOptions, error) {
	cond := opts
	opts.IfMatch, opts.IfNoneMatch, opts.SourceIfMatch = "", "", ""
	heads := map[string]*s3.ObjectInfo{} // one HEAD per key: a copy onto itself has one
	head := func(k string) (*s3.ObjectInfo, error) {
		if cur, ok := heads[k]; ok {
			return cur, nil
		}
		cur, err := h.Store.Head(ctx, k)
		switch {
		case errors.Is(err, s3.ErrNotFound):
			heads[k] = nil
			return nil, nil
		case err != nil:
			return nil, err
		}
		heads[k] = &cur
		return &cur, nil
	}
	fail := func(what string, typed error) error {
		return fmt.Errorf("s3 %s %q: %s, checked with HEAD as the store ignores conditions: %w", op, key, what, typed)
	}
	if cond.SourceIfMatch != "" {
		cur, err := head(src)
		switch {
		case err != nil:
			return opts, err
		case cur == nil:
			return opts, fail("the copy source "+src+" is gone", s3.ErrNotFound)
		case normETag(cur.ETag) != normETag(cond.SourceIfMatch):
			return opts, fail("x-amz-copy-source-if-match: "+cond.SourceIfMatch+" (the source's etag is "+cur.ETag+")", s3.ErrPreconditionFailed)
		}
	}
	if cond.IfMatch == "" && cond.IfNoneMatch == "" {
		return opts, nil
	}
	cur, err := head(key)
	if err != nil {
		return opts, err
	}
	switch {
	case cond.IfNoneMatch != "" && cur != nil && (cond.IfNoneMatch == "*" || normETag(cur.ETag) == normETag(cond.IfNoneMatch)):
		return opts, fail("If-None-Match: "+cond.IfNoneMatch+" (the object exists, etag "+cur.ETag+")", s3.ErrPreconditionFailed)
	case cond.IfMatch != "" && cur == nil:
		return opts, fail("If-Match: "+cond.IfMatch+" (no object)", s3.ErrPreconditionFailed)
	case cond.IfMatch != "" && normETag(cur.ETag) != normETag(cond.IfMatch):
		return opts, fail("If-Match: "+cond.IfMatch+" (the object's etag is "+cur.ETag+")", s3.ErrPreconditionFailed)
	}
	return opts, nil
}
