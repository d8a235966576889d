package clock

import (
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
