package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// Settings, from the environment (make chaos sets them):
//
//	CHAOS_SEEDS=N      run seeds 1..N of each mode (default 2)
//	CHAOS_FIRST=F      start at seed F instead of 1 (campaigns split across processes)
//	CHAOS_SEED=S       run only seed S (a failing seed, to replay it)
//	CHAOS_MODES=m,...  streaming, sync (default both)
//	CHAOS_DURATION=d   how long each workload runs (default 6s)
//	CHAOS_DOWN=d       how long the store is down once per run (default 3s)
//	CHAOS_WRITERS=n    writers per run (more writers, more requests, more faults a minute)
//	CHAOS_RATE=x       multiplies every fault's probability (default 1: about a third of attempts)
//	CHAOS_REPORT=file  appends one line per run (its faults, requests and verdict) to file
func settings(t *testing.T) (seeds []uint64, modes []string, dur, down time.Duration) {
	n := 2
	if v := os.Getenv("CHAOS_SEEDS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "CHAOS_SEEDS")
	}
	first := 1
	if v := os.Getenv("CHAOS_FIRST"); v != "" {
		var err error
		first, err = strconv.Atoi(v)
		require.NoError(t, err, "CHAOS_FIRST")
	}
	for i := first; i < first+n; i++ {
		seeds = append(seeds, uint64(i))
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "CHAOS_SEED")
		seeds = []uint64{s}
	}
	modes = []string{"streaming", "sync"}
	if v := os.Getenv("CHAOS_MODES"); v != "" {
		modes = strings.Split(v, ",")
	}
	dur, down = 6*time.Second, 3*time.Second
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "CHAOS_DURATION")
		dur = d
	}
	if v := os.Getenv("CHAOS_DOWN"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "CHAOS_DOWN")
		down = d
	}
	return seeds, modes, dur, down
}

var totalFaults, totalRequests atomic.Int64

// workers is CHAOS_WRITERS, or def: more writers make more requests, so more faults a minute.
func workers(def int) int {
	if n, err := strconv.Atoi(os.Getenv("CHAOS_WRITERS")); err == nil && n > 0 {
		return n
	}
	return def
}

// TestChaos runs each mode's mixed workload through the fault proxy, once per seed, and checks
// the invariants after each run. A failure names its seed: CHAOS_SEED=S replays it.
func TestChaos(t *testing.T) {
	seeds, modes, dur, down := settings(t)
	for _, mode := range modes {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed=%d", mode, seed), func(t *testing.T) {
				switch mode {
				case "streaming":
					runStreaming(t, seed, dur, down)
				case "sync":
					runSync(t, seed, dur, down)
				default:
					t.Fatalf("unknown mode %q", mode)
				}
			})
		}
	}
	t.Logf("chaos total: %d faults injected in %d requests, %d runs", totalFaults.Load(), totalRequests.Load(), len(seeds)*len(modes))

}

// start puts a fault proxy with seed in front of a fresh server and bucket, and mounts through
// it with faults off (start-up checks fail fast by design); the caller turns them on.
// pprofAddrs maps each chaos mount to its profile endpoint, for a goroutine dump when it hangs.
var pprofAddrs sync.Map

func start(t *testing.T, seed uint64, args ...string) (*Proxy, *harness.Mount, s3.Store) {
	srv, store := harness.NewServer(t)
	rates := DefaultRates
	if v, err := strconv.ParseFloat(os.Getenv("CHAOS_RATE"), 64); err == nil && v > 0 {
		for f := range rates {
			rates[f] *= v
		}
	}
	p, err := Start(seed, srv.URL(), rates)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	p.SetFaults(false)
	addr := harness.FreeAddr(t)
	m := harness.MountServer(t, p, store, harness.Options{Args: args, Env: []string{"MOUNT_S3_PPROF=" + addr}})
	pprofAddrs.Store(m, addr)
	t.Cleanup(func() {
		f, r := p.Total()
		totalFaults.Add(f)
		totalRequests.Add(r)
		t.Logf("seed %d: %s", seed, p.Summary())
		if file := os.Getenv("CHAOS_REPORT"); file != "" {
			if out, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintf(out, "%s faults=%d requests=%d failed=%v\n", t.Name(), f, r, t.Failed())
				out.Close()
			}
		}
	})
	return p, m, store
}

// during runs fn in n goroutines until the deadline, with the store down once in the middle.
func during(p *Proxy, seed uint64, dur, down time.Duration, n int, fn func(g int, rng *rand.Rand, deadline time.Time)) {
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(g, rand.New(rand.NewPCG(seed, uint64(g))), deadline)
		}()
	}
	at := time.Duration(float64(dur) * (0.3 + 0.3*rand.New(rand.NewPCG(seed, 99)).Float64()))
	timer := time.AfterFunc(at, func() { p.Down(down) })
	wg.Wait()
	timer.Stop()
}

// calm turns faults off and waits until the store is up again.
func calm(p *Proxy) {
	p.SetFaults(false)
	for p.down.Load() {
		time.Sleep(50 * time.Millisecond)
	}
}

func size(rng *rand.Rand) int {
	if rng.IntN(6) == 0 {
		return 5<<20 + rng.IntN(7<<20) // several parts of 5 MiB
	}
	return 1 + rng.IntN(200<<10)
}

// writeFile writes data to path in chunks with flags and reports whether every write and the
// close succeeded.
func writeFile(path string, flags int, data []byte) error {
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := f.Write(data[off:min(off+1<<20, len(data))]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func tagOf(path string) string { return strings.ReplaceAll(path, "/", ".") }

// runStreaming: writers create, overwrite and delete files of many sizes (multipart above
// 5 MiB), readers read them whole, a lister lists, all through faults.
func runStreaming(t *testing.T, seed uint64, dur, down time.Duration) {
	p, m, store := start(t, seed, "--allow-overwrite", "--allow-delete", "--write-part-size", "5242880")
	writers, files := workers(4), 4
	var paths []string
	for w := 0; w < writers; w++ {
		require.NoError(t, os.Mkdir(m.Path(fmt.Sprintf("w%d", w)), 0o755))
		for j := 0; j < files; j++ {
			paths = append(paths, fmt.Sprintf("w%d/f%d", w, j))
		}
	}
	l := NewLedger()
	vers := make([]int, len(paths))
	// Readers read paths while writers overwrite them (O_TRUNC): a reader that opened the old
	// version must get it whole or an error (its handle's If-Match), never the new version's
	// pages after the old one's. Write handles bypass the page cache so that it cannot.
	p.SetFaults(true)
	during(p, seed, dur, down, writers+3, func(g int, rng *rand.Rand, deadline time.Time) {
		for time.Now().Before(deadline) {
			switch {
			case g < writers: // writer g owns paths[g*files:(g+1)*files]
				i := g*files + rng.IntN(files)
				path := paths[i]
				if rng.IntN(8) == 0 {
					err := os.Remove(m.Path(path))
					l.Deleted(path, err == nil, errors.Is(err, os.ErrNotExist))
					if errors.Is(err, os.ErrNotExist) {
						// Only this writer deletes path: if the bucket has it now, the
						// mount's "no such file" was wrong, and the time says when.
						if _, herr := store.Head(context.Background(), path); herr == nil {
							l.Violation("%s: unlink said no such file at %s while the bucket had it (%v)", path, time.Now().Format("15:04:05.000"), err)
						}
					}
					continue
				}
				vers[i]++
				v := Version{Tag: tagOf(path), Ver: vers[i]}
				data := Content(v.Tag, v.Ver, size(rng))
				err := writeFile(m.Path(path), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, data)
				if err == nil || !errors.Is(err, syscall.ENOENT) {
					l.Wrote(path, v, err == nil)
				}
			case g < writers+2: // readers
				i := rng.IntN(len(paths))
				path := paths[i]
				b, truncated, err := readWhole(m.Path(path))
				if truncated {
					l.Truncated()
					continue
				}
				l.Read(path, b, err, tagOf(path))
			default: // a lister
				for w := 0; w < writers; w++ {
					os.ReadDir(m.Path(fmt.Sprintf("w%d", w)))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	calm(p)
	t.Logf("seed %d: %s", seed, l.Stats())

	// The bucket holds, for every path, a version the ledger allows, whole.
	ctx := context.Background()
	for _, path := range l.Paths() {
		allowed, absentOK := l.Allowed(path)
		b, err := getObject(ctx, store, path)
		switch {
		case errors.Is(err, s3.ErrNotFound):
			if !absentOK {
				l.Violation("%s: no object, but the last successful close wrote %v; the programs did: %s", path, keys(allowed), l.History(path))
			}
		case err != nil:
			l.Violation("%s: reading the bucket after the run: %v", path, err)
		default:
			v, verr := Verify(b)
			if verr != nil {
				l.Violation("%s: the bucket holds a torn or mixed object: %v", path, verr)
			} else if !allowed[v] {
				l.Violation("%s: the bucket holds %s, not one the ledger allows (%v, absent ok %v); the programs did: %s; the requests for it met:\n  %s",
					path, v, keys(allowed), absentOK, l.History(path), strings.Join(lastN(p.History("/"+store.Bucket()+"/"+path), 40), "\n  "))
			}
		}
	}
	checkUploads(t, l, store, p)
	checkServing(t, l, m)
	require.Empty(t, l.Violations(), "seed %d (replay with CHAOS_SEED=%d CHAOS_MODES=streaming):\n%s", seed, seed, Report(l.Violations()))
}

// runSync: writers create, edit in place, truncate, rename and delete files in their own
// directories of a sync mount while write-back runs through faults; readers read. Every call
// must succeed as on a local disk. After a flush with faults off, the bucket and the mount
// equal the writers' model, and lost+found holds only whole versions.
func runSync(t *testing.T, seed uint64, dur, down time.Duration) {
	// --debug: a violation's report follows each op on the key (the engine's op trace).
	p, m, store := start(t, seed, "--sync-dir", t.TempDir(), "--write-back-delay", "0", "--write-part-size", "5242880", "--debug")
	writers := workers(3)
	models := make([]map[string]Version, writers)
	for w := range models {
		models[w] = map[string]Version{}
		require.NoError(t, os.Mkdir(m.Path(fmt.Sprintf("w%d", w)), 0o755))
	}
	l := NewLedger()
	var modelMu sync.Mutex // readers look at the models
	// A writer holds its lock for each change; readers take it to read only closed versions
	// (a read beside a write may see part of it, on a local disk too).
	locks := make([]sync.RWMutex, writers)
	p.SetFaults(true)
	during(p, seed, dur, down, writers+2, func(g int, rng *rand.Rand, deadline time.Time) {
		created := 0
		for time.Now().Before(deadline) {
			if g >= writers { // readers: any file of any writer
				w := rng.IntN(writers)
				modelMu.Lock()
				var names []string
				for n := range models[w] {
					names = append(names, n)
				}
				modelMu.Unlock()
				if len(names) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				path := names[rng.IntN(len(names))]
				locks[w].RLock()
				b, err := os.ReadFile(m.Path(path))
				locks[w].RUnlock()
				if err != nil && !errors.Is(err, os.ErrNotExist) { // renamed or deleted meanwhile
					l.Violation("read %s: %v (a local disk would not fail)", path, err)
				}
				if err == nil {
					l.Read(path, b, nil)
				}
				continue
			}
			model := models[g]
			dir := fmt.Sprintf("w%d", g)
			var names []string
			for n := range model {
				names = append(names, n)
			}
			op := rng.IntN(10)
			if len(names) == 0 {
				op = 0
			}
			fail := func(what string, err error) { l.Violation("%s: %v (a local disk would not fail)", what, err) }
			set := func(path string, v Version) { modelMu.Lock(); model[path] = v; modelMu.Unlock() }
			locks[g].Lock()
			func() {
				defer locks[g].Unlock()
				switch {
				case op < 3: // create a new file
					created++
					path := fmt.Sprintf("%s/n%d", dir, created)
					v := Version{Tag: tagOf(path), Ver: 1}
					if err := writeFile(m.Path(path), os.O_WRONLY|os.O_CREATE|os.O_EXCL, Content(v.Tag, v.Ver, size(rng))); err != nil {
						fail("create "+path, err)
						return
					}
					set(path, v)
					l.Did(path, "created "+v.String())
				case op < 5: // edit in place: the same size, written back to front
					path := names[rng.IntN(len(names))]
					old := model[path]
					v := Version{Tag: old.Tag, Ver: old.Ver + 1}
					st, err := os.Stat(m.Path(path))
					if err != nil {
						fail("stat "+path, err)
						return
					}
					data := Content(v.Tag, v.Ver, int(st.Size()))
					if len(data) != int(st.Size()) { // too small for a header of this version
						return
					}
					f, err := os.OpenFile(m.Path(path), os.O_RDWR, 0)
					if err != nil {
						fail("open "+path, err)
						return
					}
					half := len(data) / 2
					_, err1 := f.WriteAt(data[half:], int64(half))
					_, err2 := f.WriteAt(data[:half], 0)
					if err := errors.Join(err1, err2, f.Close()); err != nil {
						fail("edit "+path, err)
						return
					}
					set(path, v)
					l.Did(path, "edited in place to "+v.String())
				case op < 6: // truncate and rewrite at another size
					path := names[rng.IntN(len(names))]
					old := model[path]
					v := Version{Tag: old.Tag, Ver: old.Ver + 1}
					if err := writeFile(m.Path(path), os.O_WRONLY|os.O_TRUNC, Content(v.Tag, v.Ver, size(rng))); err != nil {
						fail("rewrite "+path, err)
						return
					}
					set(path, v)
					l.Did(path, "truncated and rewritten as "+v.String())
				case op < 8: // rename, to a new name or over another file
					from := names[rng.IntN(len(names))]
					to := names[rng.IntN(len(names))]
					if to == from || rng.IntN(2) == 0 {
						created++
						to = fmt.Sprintf("%s/r%d", dir, created)
					}
					if err := os.Rename(m.Path(from), m.Path(to)); err != nil {
						fail("rename "+from+" "+to, err)
						return
					}
					modelMu.Lock()
					l.Did(from, "renamed to "+to)
					l.Did(to, fmt.Sprintf("renamed from %s (%v, over %v)", from, model[from], model[to]))
					model[to] = model[from]
					delete(model, from)
					modelMu.Unlock()
				default: // delete
					path := names[rng.IntN(len(names))]
					if err := os.Remove(m.Path(path)); err != nil {
						fail("unlink "+path, err)
						return
					}
					modelMu.Lock()
					delete(model, path)
					modelMu.Unlock()
					l.Did(path, "deleted")
				}
			}()
		}
	})
	calm(p)
	t.Logf("seed %d: %s", seed, l.Stats())

	// Write back everything now that the store answers; a flush may meet the tail of the
	// backoff of operations that failed during the faults, so give it a while.
	var out []byte
	var err error
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err = harness.FlushContext(ctx, t, m.Dir)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	require.NoError(t, err, "flush after the faults stopped: %s\n%s\n%s", out, tail(m.Logs()), goroutineDump(m))

	want := map[string]Version{}
	for _, model := range models {
		for path, v := range model {
			want[path] = v
		}
	}
	ctx := context.Background()
	// The mount shows the model.
	for path, v := range want {
		b, err := os.ReadFile(m.Path(path))
		if err != nil {
			l.Violation("%s: %v after the run (closed as %s)", path, err, v)
			continue
		}
		if got, verr := Verify(b); verr != nil || got != v {
			l.Violation("%s: the mount shows %v (%v), closed as %s", path, got, verr, v)
		}
	}
	// The bucket holds exactly the model, each object whole.
	objs := listKeys(t, store, "w")
	for path, v := range want {
		if !objs[path] {
			l.Violation("%s: not in the bucket after the flush (closed as %s)", path, v)
			continue
		}
		b, err := getObject(ctx, store, path)
		if err != nil {
			l.Violation("%s: reading the bucket: %v", path, err)
			continue
		}
		if got, verr := Verify(b); verr != nil || got != v {
			l.Violation("%s: the bucket holds %v (%v), closed as %s", path, got, verr, v)
		}
	}
	for key := range objs {
		if _, ok := want[key]; !ok && !strings.HasSuffix(key, "/") {
			l.Violation("%s: in the bucket but deleted or renamed away in the mount", key)
		}
	}
	// Nobody else writes the bucket: a conflict here is a false one, and whatever lost+found
	// holds must at least be a whole version.
	ents, _ := os.ReadDir(m.Dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), syncrule.LostFoundDirPrefix) {
			continue
		}
		lost, _ := os.ReadDir(filepath.Join(m.Dir, e.Name()))
		for _, f := range lost {
			b, err := os.ReadFile(filepath.Join(m.Dir, e.Name(), f.Name()))
			if err != nil {
				l.Violation("lost+found/%s: %v", f.Name(), err)
				continue
			}
			v, verr := Verify(b)
			l.Violation("lost+found/%s holds %v (%v): a false conflict, nobody else writes the bucket", f.Name(), v, verr)
		}
	}
	checkUploads(t, l, store, p)
	checkServing(t, l, m)
	require.Empty(t, l.Violations(), "seed %d (replay with CHAOS_SEED=%d CHAOS_MODES=sync):\n%s\n%s", seed, seed, Report(l.Violations()), syncTrail(l, p, m, store.Bucket()))
}

// conflictPath finds the path a "sync: conflict:" log line is about.
var conflictPath = regexp.MustCompile(`sync: conflict: (?:the local delete of )?/(\S+?)[; ]`)

// syncTrail explains a sync run's violations: for each path a violation or a conflict names,
// the programs' history, the requests for its key and the mount's log lines about it.
func syncTrail(l *Ledger, p *Proxy, m *harness.Mount, bucket string) string {
	vs := l.Violations()
	if len(vs) == 0 {
		return ""
	}
	logs := m.Logs()
	paths := map[string]bool{}
	for _, v := range vs {
		if path, _, ok := strings.Cut(v, ":"); ok && !strings.Contains(path, " ") && !strings.HasPrefix(path, "lost+found") {
			paths[path] = true
		}
	}
	for _, mm := range conflictPath.FindAllStringSubmatch(logs, -1) {
		paths[mm[1]] = true
	}
	var b strings.Builder
	for _, path := range slices.Sorted(maps.Keys(paths)) {
		fmt.Fprintf(&b, "\n== %s\nprograms: %s\nrequests:\n  %s\nlog:\n", path, l.Trail(path),
			strings.Join(p.History("/"+bucket+"/"+path), "\n  "))
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "/"+path+" ") || strings.Contains(line, "/"+path+";") || strings.Contains(line, "/"+path+")") ||
				strings.Contains(line, "="+path+" ") || strings.Contains(line, " "+path+" ") {
				fmt.Fprintf(&b, "  %s\n", line)
			}
		}
	}
	return b.String()
}

func tail(s string) string {
	if len(s) > 4000 {
		return "...\n" + s[len(s)-4000:]
	}
	return s
}

// checkUploads: no multipart upload is left open in the bucket.
func checkUploads(t *testing.T, l *Ledger, store s3.Store, p *Proxy) {
	// An upload whose create lost its answer while the store was down is found and aborted
	// once the store answers again: the mount retries that with a backoff of up to 30 s.
	var ups []s3.Upload
	var err error
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		ups, err = store.ListMultipartUploads(context.Background(), "")
		if err != nil || len(ups) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		l.Violation("listing uploads: %v", err)
		return
	}
	for _, u := range ups {
		l.Violation("multipart upload %s of %s left open; the requests for it:\n  %s", u.UploadID, u.Key,
			strings.Join(p.History("/"+store.Bucket()+"/"+u.Key), "\n  "))
	}
}

// checkServing: once the faults stop, the mount still writes and reads.
func checkServing(t *testing.T, l *Ledger, m *harness.Mount) {
	data := Content("after", 1, 1000)
	if err := writeFile(m.Path("after"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, data); err != nil {
		l.Violation("the mount no longer writes: %v", err)
		return
	}
	b, err := os.ReadFile(m.Path("after"))
	if err != nil || !bytes.Equal(b, data) {
		l.Violation("the mount no longer reads back: %v", err)
	}
}

func getObject(ctx context.Context, store s3.Store, key string) ([]byte, error) {
	body, _, err := store.Get(ctx, key, 0, -1, "")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}

func listKeys(t *testing.T, store s3.Store, prefix string) map[string]bool {
	out := map[string]bool{}
	in := s3.ListInput{Prefix: prefix}
	for {
		page, err := store.List(context.Background(), in)
		require.NoError(t, err)
		for _, o := range page.Objects {
			out[o.Key] = true
		}
		if page.NextContinuationToken == "" {
			return out
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

func keys(m map[Version]bool) []string {
	var out []string
	for v := range m {
		out = append(out, v.String())
	}
	return out
}

// readWhole reads a whole file through one descriptor. A writer that opens the path with
// O_TRUNC meanwhile truncates the file under the reader, as on a local disk (the kernel does
// it, and it shares the inode): such a read ends early with a prefix of the version it was
// reading. truncated reports a read that is the start of one version and no more; the
// campaign counts them apart (mixed or corrupted bytes are violations).
func readWhole(path string) (b []byte, truncated bool, err error) {
	b, err = os.ReadFile(path)
	if err != nil {
		return b, false, err
	}
	if _, verr := Verify(b); verr != nil && VerifyPrefix(b) {
		// The start of one version, whole as far as it goes: a read ended early by a
		// concurrent overwrite (a local disk does the same), never bytes of two versions.
		return b, true, nil
	}
	return b, false, nil
}

// goroutineDump is the mount's goroutines, from its profile endpoint, for a hang.
func goroutineDump(m *harness.Mount) string {
	addr, ok := pprofAddrs.Load(m)
	if !ok {
		return ""
	}
	resp, err := http.Get("http://" + addr.(string) + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return "mount goroutines:\n" + string(b)
}

// lastN is the last n of xs.
func lastN(xs []string, n int) []string {
	if len(xs) > n {
		return xs[len(xs)-n:]
	}
	return xs
}
