package read

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// fakeStore is the smallest s3.Store the reader needs: objects in memory, with counters of
// what was asked for and a way to break bodies mid-stream.
type fakeStore struct {
	s3.Store // nil: the reader calls nothing but Get

	mu        sync.Mutex
	objects   map[string]fakeObject
	gets      []getCall // every Get, in arrival order
	requested int64     // bytes of all ranges asked for
	open      int       // bodies not yet closed
	maxOpen   int
	// failBodies bodies from now on break after failAt bytes, or half their bytes (at
	// least one) when failAt is 0.
	failBodies int
	failAt     int64
	// trickle makes bodies yield at most trickle bytes per Read and let other goroutines
	// run, so reads really wait on GETs and interleave with seeks.
	trickle int
}

type fakeObject struct {
	data []byte
	etag string
}

type getCall struct {
	off, length int64
}

var errConnReset = errors.New("connection reset by fake peer")

func newFakeStore() *fakeStore {
	return &fakeStore{objects: map[string]fakeObject{}}
}

func (s *fakeStore) put(key string, data []byte, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[key] = fakeObject{data: data, etag: etag}
}

func (s *fakeStore) Bucket() string { return "fake" }

// Get follows the s3.Store contract for ranges, If-Match and errors.
func (s *fakeStore) Get(ctx context.Context, key string, off, length int64, ifMatch string) (io.ReadCloser, s3.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, s3.ObjectInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	obj, ok := s.objects[key]
	if !ok {
		return nil, s3.ObjectInfo{}, fmt.Errorf("fake Get %q: %w", key, s3.ErrNotFound)
	}
	if ifMatch != "" && ifMatch != obj.etag {
		return nil, s3.ObjectInfo{}, fmt.Errorf("fake Get %q: %w", key, s3.ErrPreconditionFailed)
	}
	size := int64(len(obj.data))
	if off < 0 || (off >= size && size > 0) {
		return nil, s3.ObjectInfo{}, fmt.Errorf("fake Get %q at %d: %w", key, off, s3.ErrInvalidRange)
	}
	end := size
	if length >= 0 {
		end = min(size, off+length)
	}
	s.gets = append(s.gets, getCall{off: off, length: length})
	s.requested += end - off
	s.open++
	s.maxOpen = max(s.maxOpen, s.open)
	b := &fakeBody{s: s, data: obj.data[off:end], failAt: -1, trickle: s.trickle}
	if s.failBodies > 0 && end-off > 1 {
		s.failBodies--
		b.failAt = max(1, (end-off)/2)
		if s.failAt > 0 {
			b.failAt = s.failAt
		}
	}
	return b, s3.ObjectInfo{Key: key, Size: size, ETag: obj.etag}, nil
}

func (s *fakeStore) stats() (gets int, requested int64, maxOpen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.gets), s.requested, s.maxOpen
}

func (s *fakeStore) calls() []getCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]getCall(nil), s.gets...)
}

type fakeBody struct {
	s       *fakeStore
	data    []byte
	pos     int64
	failAt  int64 // -1: never
	trickle int
	closed  bool
}

func (b *fakeBody) Read(p []byte) (int, error) {
	if b.failAt >= 0 && b.pos >= b.failAt {
		return 0, errConnReset
	}
	if b.pos >= int64(len(b.data)) {
		return 0, io.EOF
	}
	limit := int64(len(b.data))
	if b.failAt >= 0 {
		limit = b.failAt
	}
	if b.trickle > 0 {
		runtime.Gosched()
		p = p[:min(len(p), b.trickle)]
	}
	n := copy(p, b.data[b.pos:limit])
	b.pos += int64(n)
	return n, nil
}

func (b *fakeBody) Close() error {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.s.open--
	}
	return nil
}
