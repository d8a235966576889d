// Package clock owns the product's notion of time for what tests must move without sleeping:
// the streaming core's metadata TTL, sync mode's file system, local layer, watcher and engine,
// and the fetch-ahead cache take a Clock, and what they do periodically waits on its timers
// (TimerAt, Every), so a test that moves a Fake clock runs the same waiting code as
// production. Timeouts, retry backoff, throttling and the disk cache's last-use stamps (which
// it compares with its files' mtimes) read the wall clock directly.
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock tells the time and waits for it.
type Clock interface {
	Now() time.Time
	// TimerAt returns a timer whose channel receives once the clock reads at or later.
	TimerAt(at time.Time) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped it.
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

// Now returns the current wall-clock time.
func (Real) Now() time.Time { return time.Now() }

// TimerAt is time.NewTimer until at.
func (Real) TimerAt(at time.Time) Timer { return realTimer{time.NewTimer(time.Until(at))} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Fake is a clock that only moves when told to; its timers fire when Advance reaches them.
// Safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	now    time.Time               // GUARDED_BY(mu)
	timers map[*fakeTimer]struct{} // GUARDED_BY(mu): not fired or stopped yet
}

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t, timers: map[*fakeTimer]struct{}{}} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the fake time forward by d and fires the timers it reaches.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for t := range f.timers {
		if !f.now.Before(t.at) {
			t.c <- f.now
			delete(f.timers, t)
		}
	}
}

// Timers is how many timers wait for Advance: a test knows by it that something waits on
// the clock.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// TimerAt returns a timer that fires when Advance moves the clock to at (at once if it is
// there already). The deadline is absolute, so an Advance between the caller's reading of the
// time and this call cannot move it later.
func (f *Fake) TimerAt(at time.Time) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, at: at, c: make(chan time.Time, 1)}
	if !f.now.Before(at) {
		t.c <- f.now
		return t
	}
	f.timers[t] = struct{}{}
	return t
}

type fakeTimer struct {
	f  *Fake
	at time.Time
	c  chan time.Time // buffered: a firing never blocks Advance
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	_, pending := t.f.timers[t]
	delete(t.f.timers, t)
	return pending
}

// Every calls fn with the time, every period on c, until ctx is done; a call that takes
// longer than period delays the next, it never overlaps or queues up. It returns when ctx is
// done. Periodic work runs on its component's Clock this way, so that a test's Fake drives
// it as the wall clock does in production.
func Every(ctx context.Context, c Clock, period time.Duration, fn func(now time.Time)) {
	if period <= 0 {
		panic("clock.Every: the period must be positive") // as time.NewTicker: a caller's bug
	}
	next := c.Now().Add(period)
	for {
		t := c.TimerAt(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		now := c.Now()
		fn(now)
		next = now.Add(period)
	}
}
