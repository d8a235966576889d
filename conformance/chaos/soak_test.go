package chaos

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// Soak settings: SOAK_DURATION (default 15s; make soak runs 30m), SOAK_MODES (default both),
// SOAK_REPORT (a file to append the figures to).
const (
	soakReaders, soakWriters = 16, 8
	// soakMemoryTarget is the --memory-target of the soak mounts, in MiB.
	soakMemoryTarget = 256
	// soakOverhead is what the process may use beyond --memory-target: the Go runtime, the
	// garbage collector's headroom, metadata caches, the sync layer's database mapping.
	soakOverhead = 256 << 20
)

// TestSoak runs 16 readers, 8 writers, a lister and (in sync mode) renames on a real mount for
// SOAK_DURATION, then checks that no program saw an error a local disk would not give, that
// the process's memory stayed within --memory-target plus soakOverhead (not checked for a
// race-detector build, which uses several times more), and that goroutines and open file
// descriptors, counted when the mount is idle before and after, did not grow. It reports p50
// and p99 latency per operation.
func TestSoak(t *testing.T) {
	dur := 15 * time.Second
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "SOAK_DURATION")
		dur = d
	}
	modes := []string{"streaming", "sync"}
	if v := os.Getenv("SOAK_MODES"); v != "" {
		modes = strings.Split(v, ",")
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { soak(t, mode, dur) })
	}
}

type latencies struct {
	mu sync.Mutex
	by map[string][]time.Duration
}

func (l *latencies) add(op string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.by[op] = append(l.by[op], d)
}

func (l *latencies) report() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ops []string
	for op := range l.by {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	var b strings.Builder
	for _, op := range ops {
		ds := l.by[op]
		slices.Sort(ds)
		q := func(f float64) time.Duration { return ds[min(len(ds)-1, int(f*float64(len(ds))))] }
		fmt.Fprintf(&b, "  %-8s n=%-6d p50=%-10v p99=%-10v max=%v\n", op, len(ds), q(0.5).Round(time.Microsecond), q(0.99).Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond))
	}
	return b.String()
}

func soak(t *testing.T, mode string, dur time.Duration) {
	srv, store := harness.NewServer(t)
	pprofAddr := harness.FreeAddr(t)
	args := []string{"--memory-target", strconv.Itoa(soakMemoryTarget), "--allow-overwrite", "--allow-delete", "--write-part-size", "5242880"}
	if mode == "sync" {
		args = append(args, "--sync-dir", t.TempDir(), "--write-back-delay", "1s")
	}
	m := harness.MountServer(t, srv, store, harness.Options{Args: args, Env: []string{"MOUNT_S3_PPROF=" + pprofAddr}})
	for w := 0; w < soakWriters; w++ {
		require.NoError(t, os.Mkdir(m.Path(fmt.Sprintf("w%d", w)), 0o755))
	}
	// Warm up every path the workload takes with the same concurrency, so that the pools it
	// fills (idle HTTP connections, each with its goroutines and socket) are full before the
	// first count; then count while idle. A leak grows with the work, a pool does not.
	soakRound(t, m, mode, 5*time.Second, &latencies{by: map[string][]time.Duration{}})
	g0, fd0 := idleCounts(t, pprofAddr, m.Pid())

	lat := &latencies{by: map[string][]time.Duration{}}
	var peak int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak = max(peak, rss(m.Pid()))
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	errs := soakRound(t, m, mode, dur, lat)
	close(stop)
	<-sampled
	g1, fd1 := idleCounts(t, pprofAddr, m.Pid())

	report := fmt.Sprintf("soak %s, %v, %d readers, %d writers: peak RSS %d MiB (--memory-target %d MiB); goroutines %d -> %d, fds %d -> %d (idle, before and after)\n%s",
		mode, dur, soakReaders, soakWriters, peak>>20, soakMemoryTarget, g0, g1, fd0, fd1, lat.report())
	t.Log(report)
	if f := os.Getenv("SOAK_REPORT"); f != "" {
		if out, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			out.WriteString(report)
			out.Close()
		}
	}
	require.Empty(t, errs, "errors a local disk would not give")
	// A leak grows with the work (thousands of operations here); pools and timers do not.
	require.LessOrEqual(t, g1, g0+40, "goroutines grew while the mount was in use (a leak)")
	require.LessOrEqual(t, fd1, fd0+16, "open file descriptors grew while the mount was in use (a leak)")
	if !harness.RaceBuilt() {
		require.LessOrEqual(t, peak, int64(soakMemoryTarget)<<20+soakOverhead, "peak RSS beyond --memory-target plus %d MiB", soakOverhead>>20)
	}
}

// idleCounts waits for the mount to go idle (the kernel's releases, write-back, uploads,
// idle connections closing) and returns its goroutines and open fds then: the lowest seen
// once neither has dropped for 3 s, or after 30 s.
func idleCounts(t *testing.T, addr string, pid int) (g, fd int) {
	g, fd = goroutines(t, addr), fds(t, pid)
	still := time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && time.Since(still) < 3*time.Second; {
		time.Sleep(500 * time.Millisecond)
		g2, fd2 := goroutines(t, addr), fds(t, pid)
		if g2 < g || fd2 < fd {
			still = time.Now()
		}
		g, fd = min(g, g2), min(fd, fd2)
	}
	return g, fd
}

// soakSeq numbers the files of every round, so that no round creates a name an earlier one made.
var soakSeq atomic.Int64

// soakRound runs the workload for dur and returns the errors programs saw.
func soakRound(t *testing.T, m *harness.Mount, mode string, dur time.Duration, lat *latencies) []string {
	var mu sync.Mutex
	var errs []string
	fail := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, a...))
		}
	}
	// closed are the files whose close returned, for the readers; a writer replaces an entry
	// only once the new file is closed, and in streaming mode never rewrites a path another
	// may be reading (an overwrite is a new object, and a reader of the old one would fail).
	var cmu sync.Mutex
	closed := map[string]int{} // path -> size
	timed := func(op string, f func() error) error {
		start := time.Now()
		err := f()
		lat.add(op, time.Since(start))
		return err
	}
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for g := 0; g < soakWriters+soakReaders+1; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			for time.Now().Before(deadline) {
				switch {
				case g < soakWriters:
					n := soakSeq.Add(1)
					dir := fmt.Sprintf("w%d", g)
					size := 1 + rng.IntN(256<<10)
					if rng.IntN(10) == 0 {
						size = 5<<20 + rng.IntN(6<<20)
					}
					path := fmt.Sprintf("%s/f%d", dir, n)
					v := Version{Tag: tagOf(path), Ver: 1}
					if err := timed("write", func() error {
						return writeFile(m.Path(path), os.O_WRONLY|os.O_CREATE|os.O_EXCL, Content(v.Tag, v.Ver, size))
					}); err != nil {
						fail("write %s: %v", path, err)
						continue
					}
					if mode == "sync" && rng.IntN(3) == 0 {
						to := fmt.Sprintf("%s/r%d", dir, n)
						if err := timed("rename", func() error { return os.Rename(m.Path(path), m.Path(to)) }); err != nil {
							fail("rename %s: %v", path, err)
							continue
						}
						path = to
					}
					cmu.Lock()
					closed[path] = size
					old := ""
					if len(closed) > 400 { // keep the tree bounded: delete one of this writer's files
						for p := range closed {
							if strings.HasPrefix(p, dir+"/") && p != path {
								old = p
								delete(closed, p)
								break
							}
						}
					}
					cmu.Unlock()
					if old != "" {
						if err := timed("unlink", func() error { return os.Remove(m.Path(old)) }); err != nil {
							fail("unlink %s: %v", old, err)
						}
					}
				case g < soakWriters+soakReaders:
					cmu.Lock()
					var path string
					for p := range closed { // map order is random enough
						path = p
						break
					}
					cmu.Unlock()
					if path == "" {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					var b []byte
					err := timed("read", func() error {
						var err error
						b, err = os.ReadFile(m.Path(path))
						return err
					})
					cmu.Lock()
					_, still := closed[path]
					cmu.Unlock()
					switch {
					case err != nil && still:
						fail("read %s: %v", path, err)
					case err == nil:
						if _, verr := Verify(b); verr != nil {
							fail("read %s: %v", path, verr)
						}
					}
				default:
					for w := 0; w < soakWriters; w++ {
						dir := m.Path(fmt.Sprintf("w%d", w))
						if err := timed("readdir", func() error { _, err := os.ReadDir(dir); return err }); err != nil {
							fail("readdir %s: %v", dir, err)
						}
						if err := timed("stat", func() error { _, err := os.Stat(dir); return err }); err != nil {
							fail("stat %s: %v", dir, err)
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// goroutines asks the mount's pprof endpoint how many goroutines it has.
func goroutines(t *testing.T, addr string) int {
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	io.Copy(io.Discard, resp.Body)
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total")))
	require.NoError(t, err, "goroutine profile header %q", line)
	return n
}

func fds(t *testing.T, pid int) int {
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	require.NoError(t, err)
	return len(ents)
}

// rss is the process's resident set in bytes (0 if it cannot be read).
func rss(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
