// Package chaos owns the fault campaign (make chaos): a seeded fault-injecting HTTP proxy
// between a real mount and a real store, mixed workloads that drive both modes through it, and
// the checks that hold after every run whatever the faults were: every object in the bucket
// is a version a program closed, never torn or mixed; in sync mode every closed version is in
// the bucket or in lost+found; a read gives the right bytes or an error; no multipart upload
// is left open; the mount still serves.
//
// The schedule is a pure function of the seed and the request: whether the nth attempt of a
// given request (method, path, query without signature, range) meets a fault, and which, does
// not depend on timing, so a failing seed meets the same faults when it is run again.
package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is one kind of injected failure.
type Fault int

const (
	None           Fault = iota
	InternalError        // 500 InternalError, the request never reaches the store
	SlowDown             // 503 SlowDown, the request never reaches the store
	ResetBefore          // the connection is reset before the request reaches the store
	ResetAfter           // the store handles the request; its answer is lost to a reset
	CutBody              // the answer's body stops halfway (headers promised it all) and the connection is reset
	CorruptRequest       // one byte of the request body is flipped on its way to the store
	Stall                // the answer is held back for a while (a latency spike)
	numFaults
)

func (f Fault) String() string {
	return [...]string{"none", "500", "503 SlowDown", "reset before", "reset after", "cut body", "corrupt request", "stall"}[f]
}

// Rates are the probability of each fault per request attempt (the rest pass untouched).
type Rates [numFaults]float64

// DefaultRates inject a fault into about a third of all attempts.
var DefaultRates = Rates{
	InternalError:  0.07,
	SlowDown:       0.07,
	ResetBefore:    0.04,
	ResetAfter:     0.05,
	CutBody:        0.05,
	CorruptRequest: 0.04,
	Stall:          0.03,
}

// Proxy forwards S3 requests to Upstream and injects faults by the schedule.
type Proxy struct {
	Seed     uint64
	Upstream *url.URL
	Rates    Rates
	StallFor time.Duration // how long a Stall holds an answer back

	ln       net.Listener
	addr     string
	srv      *http.Server
	client   *http.Client
	enabled  atomic.Bool
	down     atomic.Bool
	mu       sync.Mutex
	attempts map[string]int // GUARDED_BY(mu): attempts seen per request identity
	conns    map[net.Conn]struct{}
	counts   [numFaults]atomic.Int64
	requests atomic.Int64
	history  map[string][]string // GUARDED_BY(mu): per object path, what each request met
	all      []*http.Request     // GUARDED_BY(mu): every request, once RecordRequests was called
	record   atomic.Bool
}

// RecordRequests keeps every later request (its method, URL and headers) for Requests.
func (p *Proxy) RecordRequests() { p.record.Store(true) }

// Requests returns every request recorded.
func (p *Proxy) Requests() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*http.Request(nil), p.all...)
}

// Start listens on a free loopback port and serves until Close. Faults are on.
func Start(seed uint64, upstream string, rates Rates) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		Seed: seed, Upstream: u, Rates: rates, StallFor: 2 * time.Second,
		ln: ln, addr: ln.Addr().String(), attempts: map[string]int{}, conns: map[net.Conn]struct{}{}, history: map[string][]string{},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}},
	}
	p.enabled.Store(true)
	p.srv = &http.Server{Handler: p, ConnState: p.track}
	go p.srv.Serve(ln)
	return p, nil
}

// URL is the proxy's endpoint, for --endpoint-url.
func (p *Proxy) URL() string { return "http://" + p.addr }

// SetFaults turns fault injection on or off (the store stays reachable either way).
func (p *Proxy) SetFaults(on bool) { p.enabled.Store(on) }

// Down makes the store unreachable for d: every connection, open or new, is reset at once,
// as a store that is down (or a network that lost its route) looks to a client.
func (p *Proxy) Down(d time.Duration) {
	p.down.Store(true)
	p.mu.Lock()
	for c := range p.conns {
		resetConn(c)
	}
	p.mu.Unlock()
	time.AfterFunc(d, func() { p.down.Store(false) })
}

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

// Injected is the number of faults injected so far, by kind.
func (p *Proxy) Injected() map[Fault]int64 {
	out := map[Fault]int64{}
	for f := Fault(1); f < numFaults; f++ {
		if n := p.counts[f].Load(); n > 0 {
			out[f] = n
		}
	}
	return out
}

// Total is the number of faults injected so far and the number of requests seen.
func (p *Proxy) Total() (faults, requests int64) {
	for f := Fault(1); f < numFaults; f++ {
		faults += p.counts[f].Load()
	}
	return faults, p.requests.Load()
}

// Summary is one line of what was injected.
func (p *Proxy) Summary() string {
	inj := p.Injected()
	var parts []string
	for f, n := range inj {
		parts = append(parts, fmt.Sprintf("%s %d", f, n))
	}
	sort.Strings(parts)
	faults, reqs := p.Total()
	return fmt.Sprintf("%d faults in %d requests (%s)", faults, reqs, strings.Join(parts, ", "))
}

// History is what each request for path (/bucket/key) met, in order: for explaining a
// violation.
func (p *Proxy) History(path string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.history[path]...)
}

func (p *Proxy) track(c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		p.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(p.conns, c)
	}
}

// identity names a request apart from its signature and date, so its retries share it.
func identity(r *http.Request) string {
	q := r.URL.Query()
	for k := range q {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-") {
			q.Del(k)
		}
	}
	return r.Method + " " + r.URL.Path + "?" + q.Encode() + " " + r.Header.Get("Range") + " " + r.Header.Get("If-Match") + r.Header.Get("If-None-Match")
}

// decide is the schedule: the fault for attempt n of the request id under seed.
func (p *Proxy) decide(id string, n int, hasBody bool) Fault {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%d", p.Seed, id, n)
	x := rand.New(rand.NewPCG(h.Sum64(), p.Seed)).Float64()
	for f := Fault(1); f < numFaults; f++ {
		if x < p.Rates[f] {
			if f == CorruptRequest && !hasBody {
				return InternalError
			}
			return f
		}
		x -= p.Rates[f]
	}
	return None
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away mid-request
	}
	if p.down.Load() {
		p.counts[ResetBefore].Add(1)
		p.mu.Lock()
		p.history[r.URL.Path] = append(p.history[r.URL.Path], fmt.Sprintf("%s %s?%s: store down", time.Now().Format("15:04:05.000"), r.Method, r.URL.RawQuery))
		p.mu.Unlock()
		reset(w)
		return
	}
	fault := None
	if p.enabled.Load() {
		id := identity(r)
		p.mu.Lock()
		p.attempts[id]++
		n := p.attempts[id]
		p.mu.Unlock()
		fault = p.decide(id, n, len(body) > 0)
	}
	if fault != None {
		p.counts[fault].Add(1)
	}
	p.mu.Lock()
	cond := ""
	for _, h := range []string{"If-Match", "If-None-Match", "X-Amz-Copy-Source", "X-Amz-Copy-Source-If-Match"} {
		if v := r.Header.Get(h); v != "" {
			cond += " " + h + "=" + v
		}
	}
	entry := len(p.history[r.URL.Path])
	p.history[r.URL.Path] = append(p.history[r.URL.Path], fmt.Sprintf("%s %s?%s%s: %s", time.Now().Format("15:04:05.000"), r.Method, r.URL.RawQuery, cond, fault))
	if p.record.Load() {
		p.all = append(p.all, r.Clone(context.Background()))
	}
	p.mu.Unlock()
	switch fault {
	case InternalError:
		s3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
		return
	case SlowDown:
		s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		return
	case ResetBefore:
		reset(w)
		return
	case CorruptRequest:
		body = bytes.Clone(body)
		body[int(p.Seed+uint64(len(body)))%len(body)] ^= 0x55
	}

	out, err := http.NewRequest(r.Method, p.Upstream.Scheme+"://"+p.Upstream.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		s3Error(w, http.StatusBadGateway, "InternalError", err.Error())
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host // the signature covers the Host the client sent
	out.ContentLength = int64(len(body))
	resp, err := p.client.Do(out)
	if err != nil {
		reset(w)
		return
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		reset(w)
		return
	}
	p.mu.Lock()
	p.history[r.URL.Path][entry] += fmt.Sprintf(", the store answered %d %s", resp.StatusCode, resp.Header.Get("ETag"))
	p.mu.Unlock()
	switch fault {
	case ResetAfter:
		reset(w)
		return
	case Stall:
		time.Sleep(p.StallFor)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if fault == CutBody && len(respBody) > 1 {
		w.Header().Set("Content-Length", fmt.Sprint(len(respBody)))
		w.WriteHeader(resp.StatusCode)
		w.Write(respBody[:len(respBody)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		reset(w)
		return
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(respBody)
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>chaos</RequestId></Error>`, code, msg)
}

// reset ends the connection with a TCP reset, so the client sees "connection reset by peer".
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(errors.New("chaos: the response writer cannot be hijacked"))
	}
	c, _, err := hj.Hijack()
	if err != nil {
		return
	}
	resetConn(c)
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
