package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// bytesStore serves one object from memory; the throttle tests need nothing else.
type bytesStore struct {
	s3.Store // nil: any other method panics, proving it was not expected
	data     []byte
	heads    int
}

func (s *bytesStore) Get(_ context.Context, _ string, off, length int64, _ string) (io.ReadCloser, s3.ObjectInfo, error) {
	end := int64(len(s.data))
	if length >= 0 {
		end = min(end, off+length)
	}
	return io.NopCloser(bytes.NewReader(s.data[off:end])), s3.ObjectInfo{Size: int64(len(s.data))}, nil
}

func (s *bytesStore) Head(context.Context, string) (s3.ObjectInfo, error) {
	s.heads++
	return s3.ObjectInfo{Size: int64(len(s.data))}, nil
}

// The assertions below are lower bounds only (a throttle may never be faster than asked);
// nothing here depends on the machine being fast.

func TestThrottledLatencyAndBandwidth(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 50_000)
	st := s3.NewThrottled(&bytesStore{data: data}, 500_000, 20*time.Millisecond)
	start := time.Now()
	body, _, err := st.Get(context.Background(), "k", 0, -1, "")
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond, "first-byte latency")
	got, err := io.ReadAll(body)
	require.NoError(t, err)
	require.NoError(t, body.Close())
	require.Equal(t, data, got)
	// 50 kB at 500 kB/s is 100ms, plus the latency.
	require.GreaterOrEqual(t, time.Since(start), 120*time.Millisecond)
}

func TestThrottledForwardsOtherMethods(t *testing.T) {
	inner := &bytesStore{data: []byte("abc")}
	st := s3.NewThrottled(inner, 1, time.Hour)
	info, err := st.Head(context.Background(), "k")
	require.NoError(t, err)
	require.Equal(t, int64(3), info.Size)
	require.Equal(t, 1, inner.heads)
}

func TestThrottledHonoursCancel(t *testing.T) {
	st := s3.NewThrottled(&bytesStore{data: make([]byte, 10_000)}, 100, 0)
	ctx, cancel := context.WithCancel(context.Background())
	body, _, err := st.Get(ctx, "k", 0, -1, "")
	require.NoError(t, err)
	cancel()
	// At 100 B/s the body would take 100s; a canceled read stops at the next pacing step.
	_, err = io.ReadAll(body)
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)

	st = s3.NewThrottled(&bytesStore{}, 0, time.Hour)
	_, _, err = st.Get(ctx, "k", 0, -1, "")
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
}

func TestThrottledUnlimited(t *testing.T) {
	st := s3.NewThrottled(&bytesStore{data: []byte("hello")}, 0, 0)
	body, _, err := st.Get(context.Background(), "k", 1, 3, "")
	require.NoError(t, err)
	got, err := io.ReadAll(body)
	require.NoError(t, err)
	require.Equal(t, "ell", string(got))
}
