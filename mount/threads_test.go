package mount

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
)

// slowFS counts the reads running at once and holds each until release is closed.
type slowFS struct {
	fuseutil.NotImplementedFileSystem
	now, most atomic.Int32
	release   chan struct{}
}

func (f *slowFS) ReadFile(ctx context.Context, op *fuseops.ReadFileOp) error {
	n := f.now.Add(1)
	for {
		m := f.most.Load()
		if n <= m || f.most.CompareAndSwap(m, n) {
			break
		}
	}
	<-f.release
	f.now.Add(-1)
	return nil
}

// --max-threads: no more than N operations run at once, and every one runs eventually.
func TestLimitedBoundsConcurrentOps(t *testing.T) {
	inner := &slowFS{release: make(chan struct{})}
	l := newLimited(inner, 3, nil)
	var wg sync.WaitGroup
	var done atomic.Int32
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.ReadFile(context.Background(), &fuseops.ReadFileOp{}); err == nil {
				done.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for inner.now.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // room for a fourth to start if the bound were broken
	if got := inner.now.Load(); got != 3 {
		t.Errorf("%d reads running, want 3", got)
	}
	close(inner.release)
	wg.Wait()
	if got := inner.most.Load(); got != 3 {
		t.Errorf("at most %d reads ran at once, want 3", got)
	}
	if got := done.Load(); got != 10 {
		t.Errorf("%d reads completed, want 10", got)
	}
}

// An operation interrupted while it waits for a slot still runs once one is free: the
// kernel interrupts whenever the caller takes any signal.
func TestLimitedInterruptedWaitStillRuns(t *testing.T) {
	inner := &slowFS{release: make(chan struct{})}
	l := newLimited(inner, 1, nil)
	go l.ReadFile(context.Background(), &fuseops.ReadFileOp{})
	for inner.now.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- l.ReadFile(ctx, &fuseops.ReadFileOp{}) }()
	select {
	case err := <-done:
		t.Fatalf("returned %v while no slot was free", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(inner.release)
	if err := <-done; err != nil {
		t.Errorf("interrupted wait: %v, want the operation's own result", err)
	}
}

// Operations the wrapper does not count (forgets) and those it does reach the inner file
// system unchanged.
func TestLimitedPassesThrough(t *testing.T) {
	l := newLimited(&fuseutil.NotImplementedFileSystem{}, 1, nil)
	if err := l.LookUpInode(context.Background(), &fuseops.LookUpInodeOp{}); !errors.Is(err, syscall.ENOSYS) {
		t.Errorf("LookUpInode: %v, want the inner ENOSYS", err)
	}
	if err := l.ForgetInode(context.Background(), &fuseops.ForgetInodeOp{}); !errors.Is(err, syscall.ENOSYS) {
		t.Errorf("ForgetInode: %v, want the inner ENOSYS", err)
	}
}
