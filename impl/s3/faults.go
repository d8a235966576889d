package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Faults is a Store decorator for tests and reliability work: it fails chosen calls of
// chosen operations with a chosen error, and can cut Get bodies short. It is safe for
// concurrent use; rules can be changed while the store is in use.
type Faults struct {
	Store
	mu    sync.Mutex
	calls map[string]int   // GUARDED_BY(mu): calls seen per operation
	rules map[string]fault // GUARDED_BY(mu)
}

type fault struct {
	nth     int   // fail the nth call (1-based); 0 = every call from `from` on
	from    int   // with nth == 0: fail calls numbered >= from
	err     error // the error to return
	cutAt   int64 // for Get: cut the body after this many bytes (with err as the read error)
	onlyCut bool
}

// ErrInjected is the default injected error.
var ErrInjected = errors.New("injected fault")

// NewFaults wraps inner.
func NewFaults(inner Store) *Faults {
	return &Faults{Store: inner, calls: map[string]int{}, rules: map[string]fault{}}
}

// FailNth makes the nth call (1-based, counted from now) of op fail with err (ErrInjected
// if nil). op is a method name: "Put", "UploadPart", "Get", ...
func (f *Faults) FailNth(op string, n int, err error) {
	f.set(op, fault{nth: n, err: err})
}

// FailFrom makes every call of op from the nth on (counted from now) fail with err.
func (f *Faults) FailFrom(op string, n int, err error) {
	f.set(op, fault{from: n, err: err})
}

// Throttle makes every call of op fail as a store that keeps asking us to slow down.
func (f *Faults) Throttle(op string) { f.FailFrom(op, 1, ErrThrottled) }

// CutGetBodies makes every Get body fail after n bytes.
func (f *Faults) CutGetBodies(n int64) {
	f.set("Get", fault{cutAt: n, onlyCut: true, err: io.ErrUnexpectedEOF})
}

// Clear removes every rule.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = map[string]fault{}
}

// Calls returns how many calls of op were made since the rule for op was last set.
func (f *Faults) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *Faults) set(op string, r fault) {
	if r.err == nil {
		r.err = ErrInjected
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[op] = r
	f.calls[op] = 0
}

// check counts a call of op and returns the injected error for it, if any.
func (f *Faults) check(op, key string) (fault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	r, ok := f.rules[op]
	if !ok || r.onlyCut {
		return r, nil
	}
	n := f.calls[op]
	if (r.nth != 0 && n == r.nth) || (r.nth == 0 && n >= r.from) {
		return r, fmt.Errorf("s3 %s %q: %w", op, key, r.err)
	}
	return r, nil
}

func (f *Faults) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if _, err := f.check("Head", key); err != nil {
		return ObjectInfo{}, err
	}
	return f.Store.Head(ctx, key)
}

func (f *Faults) Get(ctx context.Context, key string, offset, length int64, ifMatch string) (io.ReadCloser, ObjectInfo, error) {
	r, err := f.check("Get", key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	body, info, err := f.Store.Get(ctx, key, offset, length, ifMatch)
	if err == nil && r.onlyCut {
		body = &cutBody{ReadCloser: body, left: r.cutAt, err: r.err}
	}
	return body, info, err
}

func (f *Faults) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts WriteOptions) (ObjectInfo, error) {
	if _, err := f.check("Put", key); err != nil {
		return ObjectInfo{}, err
	}
	return f.Store.Put(ctx, key, body, size, opts)
}

func (f *Faults) CreateMultipart(ctx context.Context, key string, opts WriteOptions) (string, error) {
	if _, err := f.check("CreateMultipart", key); err != nil {
		return "", err
	}
	return f.Store.CreateMultipart(ctx, key, opts)
}

func (f *Faults) UploadPart(ctx context.Context, key, uploadID string, number int32, data []byte, checksum string) (CompletedPart, error) {
	if _, err := f.check("UploadPart", key); err != nil {
		return CompletedPart{}, err
	}
	return f.Store.UploadPart(ctx, key, uploadID, number, data, checksum)
}

func (f *Faults) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, src string, first, last int64, srcIfMatch string) (CompletedPart, error) {
	if _, err := f.check("UploadPartCopy", key); err != nil {
		return CompletedPart{}, err
	}
	return f.Store.UploadPartCopy(ctx, key, uploadID, number, src, first, last, srcIfMatch)
}

func (f *Faults) CompleteMultipart(ctx context.Context, key, uploadID string, parts []CompletedPart, opts WriteOptions) (ObjectInfo, error) {
	if _, err := f.check("CompleteMultipart", key); err != nil {
		return ObjectInfo{}, err
	}
	return f.Store.CompleteMultipart(ctx, key, uploadID, parts, opts)
}

func (f *Faults) Copy(ctx context.Context, src, dst string, opts WriteOptions) (ObjectInfo, error) {
	if _, err := f.check("Copy", dst); err != nil {
		return ObjectInfo{}, err
	}
	return f.Store.Copy(ctx, src, dst, opts)
}

func (f *Faults) Delete(ctx context.Context, key string) error {
	if _, err := f.check("Delete", key); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

func (f *Faults) List(ctx context.Context, in ListInput) (ListPage, error) {
	if _, err := f.check("List", in.Prefix); err != nil {
		return ListPage{}, err
	}
	return f.Store.List(ctx, in)
}

// cutBody fails with err after left bytes.
type cutBody struct {
	io.ReadCloser
	left int64
	err  error
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}
