// Package write owns the streaming write path: a new object written sequentially from offset 0
// goes to the store as a multipart upload whose parts are sent concurrently while the program
// is still writing, with a bounded number of parts in flight (and so bounded memory). An
// object smaller than one part goes up as a single PutObject. Any error, and any write that
// is not at the end of what was written, aborts the upload so that no partial object and no
// dangling upload are left behind (rule S4).
//
// It must not know about files, inodes or FUSE: impl/streamfs decides when to write and when to
// complete.
package write

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// Defaults of the upload configuration.
const (
	DefaultPartSize    = 8 << 20
	DefaultMaxInFlight = 8
	// maxParts is S3's limit on the parts of one upload.
	maxParts = 10000
	// maxPartSize is S3's limit on the size of one part.
	maxPartSize = 5 << 30
	// partsPerSize is how many parts are uploaded at one size before the size doubles, so
	// that 10,000 parts of a default 8 MiB start reach beyond S3's 5 TiB object limit.
	partsPerSize = 1000
)

// ErrNotSequential is returned for a write at another offset than the end of the data
// written so far (S4).
var ErrNotSequential = errors.New("streaming writes must be sequential from offset 0")

// ErrTooLarge is returned when the object would exceed what 10,000 parts can hold.
var ErrTooLarge = errors.New("object too large for a multipart upload")

// Config is how uploads are made.
type Config struct {
	Store       s3.Store
	Budget      *memory.Budget // parts being filled or sent hold memory here; nil = no limit
	PartSize    int64          // first part size; 0 means DefaultPartSize
	MaxInFlight int            // parts uploaded concurrently per upload; 0 means DefaultMaxInFlight
	Options     s3.WriteOptions
	// InferContentType sets each object's Content-Type from its key's extension unless
	// Options names one (--infer-content-type).
	InferContentType bool
}

// PartSize returns the size of part number n (1-based): the configured size for the first
// 1,000 parts, doubling every 1,000 parts after, capped at S3's maximum.
func (c Config) partSize(n int32) int64 {
	size := c.PartSize
	if size <= 0 {
		size = DefaultPartSize
	}
	for i := (int64(n) - 1) / partsPerSize; i > 0 && size < maxPartSize; i-- {
		size *= 2
	}
	return min(size, maxPartSize)
}

// Upload is one object being written. Write, Complete and Abort must not be called
// concurrently with each other (impl/streamfs serialises them under the file handle's lock).
type Upload struct {
	// Dependencies and constant data.
	cfg Config
	key string

	// Mutable state, owned by the caller's goroutine.
	size     int64  // bytes accepted so far
	buf      []byte // the part being filled
	next     int32  // number of the part being filled
	uploadID string // "" until the first part is sent
	finished bool   // completed or aborted

	// State shared with the part goroutines.
	wg       sync.WaitGroup
	inflight chan struct{} // one token per part in flight
	mu       sync.Mutex
	parts    []s3.CompletedPart // GUARDED_BY(mu), indexed by part number - 1
	err      error              // GUARDED_BY(mu): the first failure
	ctx      context.Context
	cancel   context.CancelFunc
}

// New starts an upload of key. Nothing is sent until the first part is full or Complete.
func New(cfg Config, key string) *Upload {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.InferContentType && cfg.Options.ContentType == "" {
		cfg.Options.ContentType = s3.ContentTypeFor(key)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Upload{cfg: cfg, key: key, next: 1, inflight: make(chan struct{}, cfg.MaxInFlight), ctx: ctx, cancel: cancel}
}

// Size returns how many bytes have been written.
func (u *Upload) Size() int64 { return u.size }

// Key returns the key the upload writes.
func (u *Upload) Key() string { return u.key }

// Write appends p, which must start at offset off == Size(). A write elsewhere fails with
// ErrNotSequential and aborts the upload; so does a failure of an earlier part.
func (u *Upload) Write(ctx context.Context, off int64, p []byte) error {
	if u.finished {
		return fmt.Errorf("upload of %q already finished", u.key)
	}
	if err := u.failure(); err != nil {
		u.Abort(ctx)
		return err
	}
	if off != u.size {
		u.Abort(ctx)
		return fmt.Errorf("write at offset %d of %q after %d bytes: %w", off, u.key, u.size, ErrNotSequential)
	}
	for len(p) > 0 {
		want := u.cfg.partSize(u.next)
		if u.buf == nil {
			if err := u.acquire(ctx, want); err != nil {
				u.Abort(ctx)
				return err
			}
			u.buf = make([]byte, 0, want)
		}
		n := min(int64(len(p)), want-int64(len(u.buf)))
		u.buf = append(u.buf, p[:n]...)
		u.size += n
		p = p[n:]
		if int64(len(u.buf)) == want {
			if err := u.sendPart(ctx); err != nil {
				u.Abort(ctx)
				return err
			}
		}
	}
	return nil
}

// sendPart starts uploading the filled buffer as the next part, waiting for a slot when
// MaxInFlight parts are already on their way.
func (u *Upload) sendPart(ctx context.Context) error {
	if u.next > maxParts {
		return fmt.Errorf("%q: %w", u.key, ErrTooLarge)
	}
	if u.uploadID == "" {
		id, err := u.cfg.Store.CreateMultipart(ctx, u.key, u.cfg.Options)
		if err != nil {
			return err
		}
		u.uploadID = id
	}
	select {
	case u.inflight <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := u.failure(); err != nil {
		<-u.inflight
		return err
	}
	data, number := u.buf, u.next
	u.buf, u.next = nil, u.next+1
	u.mu.Lock()
	u.parts = append(u.parts, s3.CompletedPart{})
	u.mu.Unlock()
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() { <-u.inflight }()
		defer u.release(data)
		part, err := u.cfg.Store.UploadPart(u.ctx, u.key, u.uploadID, number, data, u.cfg.Options.Checksum)
		u.mu.Lock()
		defer u.mu.Unlock()
		if err != nil {
			if u.err == nil {
				u.err = fmt.Errorf("upload part %d of %q: %w", number, u.key, err)
			}
			return
		}
		u.parts[number-1] = part
	}()
	return nil
}

func (u *Upload) failure() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// Complete finishes the upload: the object appears in the bucket with everything written.
// On failure the upload is aborted and nothing is left behind.
func (u *Upload) Complete(ctx context.Context) (s3.ObjectInfo, error) {
	if u.finished {
		return s3.ObjectInfo{}, fmt.Errorf("upload of %q already finished", u.key)
	}
	if u.uploadID == "" {
		u.finished = true
		u.cancel()
		info, err := u.cfg.Store.Put(ctx, u.key, bytes.NewReader(u.buf), int64(len(u.buf)), u.cfg.Options)
		u.release(u.buf)
		u.buf = nil
		return info, err
	}
	if len(u.buf) > 0 {
		if err := u.sendPart(ctx); err != nil {
			u.Abort(ctx)
			return s3.ObjectInfo{}, err
		}
	}
	u.wg.Wait()
	if err := u.failure(); err != nil {
		u.Abort(ctx)
		return s3.ObjectInfo{}, err
	}
	u.finished = true
	u.cancel()
	info, err := u.cfg.Store.CompleteMultipart(ctx, u.key, u.uploadID, u.parts, u.cfg.Options)
	if err != nil {
		u.abortUpload(ctx)
		return s3.ObjectInfo{}, err
	}
	u.uploadID = ""
	return info, nil
}

// Abort cancels the parts in flight and discards the upload. It is safe to call more than
// once and after Complete failed.
func (u *Upload) Abort(ctx context.Context) {
	if u.finished && u.uploadID == "" {
		return
	}
	u.finished = true
	u.cancel()
	u.wg.Wait()
	u.release(u.buf)
	u.buf = nil
	u.abortUpload(ctx)
}

// acquire takes n bytes of the shared memory budget for a part buffer.
func (u *Upload) acquire(ctx context.Context, n int64) error {
	if u.cfg.Budget == nil {
		return nil
	}
	return u.cfg.Budget.Acquire(ctx, n)
}

// release returns the memory of a part buffer taken by acquire.
func (u *Upload) release(buf []byte) {
	if u.cfg.Budget != nil && buf != nil {
		u.cfg.Budget.Release(int64(cap(buf)))
	}
}

func (u *Upload) abortUpload(ctx context.Context) {
	if u.uploadID != "" {
		// A fresh context: the caller's may be the one that was cancelled.
		u.cfg.Store.AbortMultipart(context.WithoutCancel(ctx), u.key, u.uploadID)
		u.uploadID = ""
	}
}
