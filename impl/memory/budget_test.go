package memory

import (
	"context"
	"errors"
	"math"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAcquireRelease(t *testing.T) {
	b := NewBudget(100)
	if err := b.Acquire(context.Background(), 60); err != nil {
		t.Fatal(err)
	}
	if b.TryAcquire(50) {
		t.Fatal("TryAcquire(50) succeeded with 60 of 100 in use")
	}
	if !b.TryAcquire(40) {
		t.Fatal("TryAcquire(40) failed with 60 of 100 in use")
	}
	if got := b.InUse(); got != 100 {
		t.Fatalf("InUse = %d, want 100", got)
	}
	b.Release(100)
	if got := b.InUse(); got != 0 {
		t.Fatalf("InUse = %d, want 0", got)
	}
	if b.Limit() != 100 {
		t.Fatalf("Limit = %d", b.Limit())
	}
}

func TestAcquireBlocksUntilRelease(t *testing.T) {
	b := NewBudget(10)
	if !b.TryAcquire(10) {
		t.Fatal("TryAcquire failed on an empty budget")
	}
	done := make(chan error)
	go func() { done <- b.Acquire(context.Background(), 5) }()
	waitQueued(t, b, 1)
	select {
	case err := <-done:
		t.Fatalf("Acquire returned %v while the budget was full", err)
	default:
	}
	// A queued waiter must not be overtaken by an opportunistic caller.
	b.Release(3)
	if b.TryAcquire(1) {
		t.Fatal("TryAcquire overtook a queued Acquire")
	}
	b.Release(2)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := b.InUse(); got != 10 {
		t.Fatalf("InUse = %d, want 10", got)
	}
}

func TestAcquireCanceled(t *testing.T) {
	b := NewBudget(10)
	b.TryAcquire(8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Acquire(ctx, 5) }()
	waitQueued(t, b, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire = %v, want context.Canceled", err)
	}
	if got := b.InUse(); got != 8 {
		t.Fatalf("InUse = %d after a canceled Acquire, want 8", got)
	}
	// The canceled waiter no longer blocks others.
	if !b.TryAcquire(2) {
		t.Fatal("TryAcquire blocked by a canceled waiter")
	}
}

func TestOversizedGrantedAlone(t *testing.T) {
	b := NewBudget(10)
	b.TryAcquire(4)
	done := make(chan error)
	go func() { done <- b.Acquire(context.Background(), 25) }()
	waitQueued(t, b, 1)
	b.Release(4)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := b.InUse(); got != 25 {
		t.Fatalf("InUse = %d, want 25", got)
	}
	b.Release(25)
	if !b.TryAcquire(30) {
		t.Fatal("an oversized TryAcquire on an empty budget must succeed")
	}
}

func TestHugeLimitDoesNotOverflow(t *testing.T) {
	b := NewBudget(math.MaxInt64)
	if !b.TryAcquire(math.MaxInt64 - 1) {
		t.Fatal("TryAcquire failed")
	}
	if b.TryAcquire(2) {
		t.Fatal("TryAcquire exceeded MaxInt64")
	}
}

// TestConcurrentNeverExceeds hammers one budget from many goroutines; the race detector
// checks the locking and the observer checks the limit.
func TestConcurrentNeverExceeds(t *testing.T) {
	const limit = 1000
	b := NewBudget(limit)
	var held, maxHeld atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for i := 0; i < 500; i++ {
				n := int64(rng.Intn(limit/2) + 1)
				if rng.Intn(2) == 0 {
					if !b.TryAcquire(n) {
						continue
					}
				} else {
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.Intn(100))*time.Microsecond)
					err := b.Acquire(ctx, n)
					cancel()
					if err != nil {
						continue
					}
				}
				h := held.Add(n)
				for m := maxHeld.Load(); h > m && !maxHeld.CompareAndSwap(m, h); m = maxHeld.Load() {
				}
				if in := b.InUse(); in > limit {
					t.Errorf("InUse = %d > limit %d", in, limit)
				}
				held.Add(-n)
				b.Release(n)
			}
		}(int64(g))
	}
	wg.Wait()
	if b.InUse() != 0 {
		t.Fatalf("InUse = %d after all releases", b.InUse())
	}
	if maxHeld.Load() > limit {
		t.Fatalf("held %d bytes at once, limit %d", maxHeld.Load(), limit)
	}
}

func TestReleaseTooMuchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewBudget(10).Release(1)
}

// waitQueued waits until n callers are queued in Acquire: the state the test needs before it
// releases, not a timing assumption.
func waitQueued(t *testing.T, b *Budget, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		q := b.waiters.Len()
		b.mu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}
