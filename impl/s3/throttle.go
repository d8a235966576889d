package s3

import (
	"context"
	"io"
	"time"
)

// NewThrottled wraps inner so that every Get waits latency before it is sent (time to first
// byte) and its body then yields at most bytesPerSecond. The limit is per request, as S3
// limits each connection rather than the client: N parallel GETs go N times faster in
// aggregate, which is what makes a prefetcher with ranged GETs worth having.
//
// It is for tests and benchmarks only: it lets a fast local store (the embedded server, an
// in-memory fake) show the effect of S3's latency and per-connection bandwidth. A zero or
// negative bytesPerSecond means no bandwidth limit; other methods are forwarded unchanged.
func NewThrottled(inner Store, bytesPerSecond int64, latency time.Duration) Store {
	return &throttled{Store: inner, bps: bytesPerSecond, latency: latency}
}

type throttled struct {
	Store   // every method but Get is forwarded as is
	bps     int64
	latency time.Duration
}

// Get implements Store.
func (t *throttled) Get(ctx context.Context, key string, offset, length int64, ifMatch string) (io.ReadCloser, ObjectInfo, error) {
	if err := sleepCtx(ctx, t.latency); err != nil {
		return nil, ObjectInfo{}, err
	}
	body, info, err := t.Store.Get(ctx, key, offset, length, ifMatch)
	if err != nil || t.bps <= 0 {
		return body, info, err
	}
	return &throttledBody{ReadCloser: body, ctx: ctx, bps: t.bps, start: time.Now()}, info, nil
}

// throttledBody paces reads so that after n bytes at least n/bps seconds have passed since
// the first byte could be read.
type throttledBody struct {
	io.ReadCloser
	ctx   context.Context // the Get's: cancelling it interrupts a paced read, as with a real socket
	bps   int64
	start time.Time
	n     int64
}

// throttleSlice bounds one Read so that pacing is smooth (about 10ms of data) rather than a
// long burst followed by a long pause.
func (b *throttledBody) throttleSlice() int {
	return int(max(b.bps/100, 512))
}

func (b *throttledBody) Read(p []byte) (int, error) {
	if len(p) > b.throttleSlice() {
		p = p[:b.throttleSlice()]
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	due := b.start.Add(time.Duration(float64(b.n) / float64(b.bps) * float64(time.Second)))
	if serr := sleepCtx(b.ctx, time.Until(due)); serr != nil && err == nil {
		err = serr
	}
	return n, err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
