package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/stretchr/testify/require"
)

// faultyServer is middleware that fails a share of requests the way a network does: refused
// before the store acts (a 503, or a reset), or carried out with the answer lost (a reset after
// the store acted). Seeded, so a failing run names its seed.
type faultyServer struct {
	mu   sync.Mutex
	rng  *rand.Rand
	rate float64
	on   atomic.Bool
	hist sync.Map // key -> *[]string, what each request for a key met
}

func (f *faultyServer) record(r *http.Request, what string) {
	v, _ := f.hist.LoadOrStore(r.URL.Path, &[]string{})
	f.mu.Lock()
	*v.(*[]string) = append(*v.(*[]string), fmt.Sprintf("%s %s cond=%s%s copy=%s: %s", r.Method, r.URL.RawQuery,
		r.Header.Get("If-Match"), r.Header.Get("If-None-Match"), r.Header.Get("X-Amz-Copy-Source"), what))
	f.mu.Unlock()
}

func (f *faultyServer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := 1.0
		if f.on.Load() {
			f.mu.Lock()
			x = f.rng.Float64()
			f.mu.Unlock()
		}
		switch {
		case x < f.rate/4 && r.ContentLength > 0:
			// A byte flipped on the way: the store must refuse it (its checksum).
			body, _ := io.ReadAll(r.Body)
			body[len(body)/2] ^= 0x55
			r.Body = io.NopCloser(bytes.NewReader(body))
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			f.record(r, fmt.Sprintf("corrupted: %d %s", rec.Code, strings.TrimSpace(rec.Body.String())))
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
		case x < f.rate/3:
			f.record(r, "503 before")
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>slow down</Message></Error>`)
		case x < 2*f.rate/3:
			f.record(r, "reset before")
			hangUp(w)
		case x < f.rate:
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			f.record(r, fmt.Sprintf("done (%d), answer lost", rec.Code))
			hangUp(w)
		default:
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			f.record(r, fmt.Sprintf("%d %s", rec.Code, rec.Header().Get("ETag")))
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
		}
	})
}

func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
		}
	}
}

// TestEngineUnderFaults is the chaos campaign without a kernel: writers create, edit,
// truncate, rename (to new names and over other files) and delete files in the local layer
// while the engine writes back through a store that fails a third of the requests (before
// or after acting); then, faults off, a flush must leave the bucket equal to the local files,
// with no conflict (nobody else writes the bucket). ENGINE_CHAOS_RUNS sets the number of seeds
// (default 20), ENGINE_CHAOS_SEED replays one, ENGINE_CHAOS_RATE sets the share of requests
// that fail (default 0.35).
func TestEngineUnderFaults(t *testing.T) {
	runs, first := 20, 1
	if n, err := strconv.Atoi(os.Getenv("ENGINE_CHAOS_RUNS")); err == nil {
		runs = n
	}
	if n, err := strconv.Atoi(os.Getenv("ENGINE_CHAOS_SEED")); err == nil {
		runs, first = 1, n
	}
	if testing.Short() {
		runs = min(runs, 3)
	}
	for seed := first; seed < first+runs; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { engineChaos(t, uint64(seed)) })
	}
}

func engineChaos(t *testing.T, seed uint64) {
	fs := &faultyServer{rng: rand.New(rand.NewPCG(seed, 7)), rate: 0.35}
	if r, err := strconv.ParseFloat(os.Getenv("ENGINE_CHAOS_RATE"), 64); err == nil {
		fs.rate = r
	}
	v := newEnvWith(t, fs.wrap)
	v.start(nil, func(c *Config) {
		c.Params.WriteBackDelay = 0
		c.Workers = 4
	})
	// The engine's backoffs run on the fake clock: keep it moving.
	stopClock := make(chan struct{})
	clockDone := make(chan struct{})
	go func() {
		defer close(clockDone)
		for {
			select {
			case <-stopClock:
				return
			case <-time.After(time.Millisecond):
				v.clk.Advance(50 * time.Millisecond)
			}
		}
	}()
	defer func() { close(stopClock); <-clockDone }()

	fs.on.Store(true)
	// Writers work at once, each on its own names, as programs do.
	const writers = 3
	models := make([]map[string]string, writers) // path -> content
	trails := make([][]string, writers)
	var wg sync.WaitGroup
	for w := range writers {
		models[w] = map[string]string{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(11+w)))
			model := models[w]
			created := 0
			content := func(tag string) string { return strings.Repeat(tag+";", 1+rng.IntN(40)) }
			for i := 0; i < 60; i++ {
				var ns []string
				for p := range model {
					ns = append(ns, p)
				}
				sort.Strings(ns)
				op := rng.IntN(10)
				if len(ns) == 0 {
					op = 0
				}
				var err error
				switch {
				case op < 3:
					created++
					p := fmt.Sprintf("w%dn%d", w, created)
					c := content(p + "#1")
					var h *local.Handle
					if _, h, err = v.layer.CreateOpen(p, 0o644, 1, 2); err == nil {
						if _, err = h.WriteAt([]byte(c), 0); err == nil {
							err = h.Close()
						}
					}
					model[p] = c
					trails[w] = append(trails[w], "create "+p)
				case op < 6:
					p := ns[rng.IntN(len(ns))]
					c := content(fmt.Sprintf("%s#%d", p, i))
					if err = v.layer.Truncate(p, 0); err == nil {
						_, err = v.layer.WriteAt(p, []byte(c), 0)
					}
					model[p] = c
					trails[w] = append(trails[w], "rewrite "+p)
				case op < 8:
					from := ns[rng.IntN(len(ns))]
					to := ns[rng.IntN(len(ns))]
					if to == from || rng.IntN(2) == 0 {
						created++
						to = fmt.Sprintf("w%dr%d", w, created)
					}
					err = v.layer.Rename(from, to)
					model[to] = model[from]
					delete(model, from)
					trails[w] = append(trails[w], "rename "+from+" "+to)
				default:
					p := ns[rng.IntN(len(ns))]
					err = v.layer.Remove(p)
					delete(model, p)
					trails[w] = append(trails[w], "delete "+p)
				}
				if err != nil {
					t.Errorf("writer %d: %v (a local disk would not fail)", w, err)
					return
				}
				v.e.Notify()
				if rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	model := map[string]string{}
	var trail []string
	for w := range writers {
		maps.Copy(model, models[w])
		trail = append(trail, trails[w]...)
	}
	fs.on.Store(false)

	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = v.e.Flush(ctx)
		cancel()
		if err == nil {
			break
		}
	}
	report := func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "seed %d (ENGINE_CHAOS_SEED=%d)\nprograms: %s\n", seed, seed, strings.Join(trail, "; "))
		fs.hist.Range(func(k, h any) bool {
			fs.mu.Lock()
			fmt.Fprintf(&b, "%s:\n  %s\n", k, strings.Join(*h.(*[]string), "\n  "))
			fs.mu.Unlock()
			return true
		})
		return b.String()
	}
	require.NoError(t, err, "flush after the faults stopped\n%s", report())
	var problems []string
	got := map[string]bool{}
	for _, k := range v.keys() {
		got[k] = true
		want, ok := model[k]
		if !ok {
			problems = append(problems, k+": in the bucket, not in the sync dir")
			continue
		}
		if body, _ := v.object(k); body != want {
			problems = append(problems, fmt.Sprintf("%s: the bucket holds %.30q, the file %.30q", k, body, want))
		}
	}
	for p := range model {
		if !got[p] {
			problems = append(problems, p+": not in the bucket")
		}
		if body := v.readLocal(p); body != model[p] {
			problems = append(problems, fmt.Sprintf("%s: the sync dir holds %.30q, want %.30q", p, body, model[p]))
		}
	}
	if c := v.e.Stats().Conflicts; c > 0 {
		problems = append(problems, fmt.Sprintf("%d conflicts, and nobody else writes the bucket", c))
	}
	if len(problems) > 0 {
		t.Fatalf("%s\n%s", strings.Join(problems, "\n"), report())
	}
}
