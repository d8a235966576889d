package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrOutsidePrefix: a request named a key outside the mount prefix. It never reaches the
// store; that it happened at all is a bug in the caller.
var ErrOutsidePrefix = errors.New("key outside the mount prefix")

// Confine wraps the store a mount uses so that no request can name a key outside prefix (K8),
// whatever the layers above compute: the one check every key passes through, at the last
// point before the network. A listing's prefix, a copy's source and destination and every
// key are checked; an empty prefix confines nothing.
func Confine(inner Store, prefix string) Store {
	if prefix == "" {
		return inner
	}
	return &confined{Store: inner, prefix: prefix}
}

type confined struct {
	Store
	prefix string
}

func (c *confined) check(op string, keys ...string) error {
	for _, k := range keys {
		if !strings.HasPrefix(k, c.prefix) {
			return fmt.Errorf("s3 %s %q: %w %q", op, k, ErrOutsidePrefix, c.prefix)
		}
	}
	return nil
}

func (c *confined) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := c.check("HeadObject", key); err != nil {
		return ObjectInfo{}, err
	}
	return c.Store.Head(ctx, key)
}

func (c *confined) Get(ctx context.Context, key string, offset, length int64, ifMatch string) (io.ReadCloser, ObjectInfo, error) {
	if err := c.check("GetObject", key); err != nil {
		return nil, ObjectInfo{}, err
	}
	return c.Store.Get(ctx, key, offset, length, ifMatch)
}

func (c *confined) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts WriteOptions) (ObjectInfo, error) {
	if err := c.check("PutObject", key); err != nil {
		return ObjectInfo{}, err
	}
	return c.Store.Put(ctx, key, body, size, opts)
}

func (c *confined) CreateMultipart(ctx context.Context, key string, opts WriteOptions) (string, error) {
	if err := c.check("CreateMultipartUpload", key); err != nil {
		return "", err
	}
	return c.Store.CreateMultipart(ctx, key, opts)
}

func (c *confined) UploadPart(ctx context.Context, key, uploadID string, number int32, data []byte, checksum string) (CompletedPart, error) {
	if err := c.check("UploadPart", key); err != nil {
		return CompletedPart{}, err
	}
	return c.Store.UploadPart(ctx, key, uploadID, number, data, checksum)
}

func (c *confined) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, src string, first, last int64, srcIfMatch string) (CompletedPart, error) {
	if err := c.check("UploadPartCopy", key, src); err != nil {
		return CompletedPart{}, err
	}
	return c.Store.UploadPartCopy(ctx, key, uploadID, number, src, first, last, srcIfMatch)
}

func (c *confined) CompleteMultipart(ctx context.Context, key, uploadID string, parts []CompletedPart, opts WriteOptions) (ObjectInfo, error) {
	if err := c.check("CompleteMultipartUpload", key); err != nil {
		return ObjectInfo{}, err
	}
	return c.Store.CompleteMultipart(ctx, key, uploadID, parts, opts)
}

func (c *confined) AbortMultipart(ctx context.Context, key, uploadID string) error {
	if err := c.check("AbortMultipartUpload", key); err != nil {
		return err
	}
	return c.Store.AbortMultipart(ctx, key, uploadID)
}

func (c *confined) ListMultipartUploads(ctx context.Context, prefix string) ([]Upload, error) {
	if err := c.check("ListMultipartUploads", prefix); err != nil {
		return nil, err
	}
	return c.Store.ListMultipartUploads(ctx, prefix)
}

func (c *confined) Copy(ctx context.Context, src, dst string, opts WriteOptions) (ObjectInfo, error) {
	if err := c.check("CopyObject", src, dst); err != nil {
		return ObjectInfo{}, err
	}
	return c.Store.Copy(ctx, src, dst, opts)
}

func (c *confined) Delete(ctx context.Context, key string) error {
	if err := c.check("DeleteObject", key); err != nil {
		return err
	}
	return c.Store.Delete(ctx, key)
}

func (c *confined) List(ctx context.Context, in ListInput) (ListPage, error) {
	if err := c.check("ListObjectsV2", in.Prefix); err != nil {
		return ListPage{}, err
	}
	if in.StartAfter != "" && in.StartAfter < c.prefix {
		in.StartAfter = "" // a start before the prefix lists nothing more than the prefix does
	}
	return c.Store.List(ctx, in)
}
