package clock

import (
	"context"
	"testing"
	"time"
)

func fired(t Timer) bool {
	select {
	case <-t.C():
		return true
	default:
		return false
	}
}

func TestFakeTimers(t *testing.T) {
	f := NewFake(time.Unix(1000, 0))
	start := f.Now()
	a, b, now := f.TimerAt(start.Add(time.Second)), f.TimerAt(start.Add(2*time.Second)), f.TimerAt(start)
	if !fired(now) {
		t.Fatal("a timer of 0 fires at once")
	}
	f.Advance(999 * time.Millisecond)
	if fired(a) || fired(b) {
		t.Fatal("fired before its time")
	}
	f.Advance(time.Millisecond)
	if !fired(a) || fired(b) {
		t.Fatal("the 1 s timer fires when the clock reaches it, the 2 s one not yet")
	}
	if !b.Stop() || b.Stop() {
		t.Fatal("Stop reports whether it stopped a pending timer")
	}
	f.Advance(time.Hour)
	if fired(b) {
		t.Fatal("a stopped timer fired")
	}
	if a.Stop() {
		t.Fatal("Stop of a fired timer")
	}
}

// Every runs on its clock: a Fake drives it, one call per period that passed, never early.
func TestEveryRunsOnItsClock(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	calls := make(chan time.Time, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, f, time.Minute, func(now time.Time) { calls <- now })
	}()
	waitTimers := func() {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if f.Timers() > 0 {
				return
			}
		}
		t.Fatal("Every did not wait on the clock")
	}
	waitTimers()
	f.Advance(59 * time.Second)
	select {
	case <-calls:
		t.Fatal("called before its period")
	case <-time.After(20 * time.Millisecond):
	}
	f.Advance(time.Second)
	if got := <-calls; !got.Equal(time.Unix(60, 0)) {
		t.Fatalf("called at %v", got)
	}
	waitTimers()
	f.Advance(time.Minute)
	<-calls
	cancel()
	<-done
}
