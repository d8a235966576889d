package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// profile is how the network between the clients (the mount and the raw SDK) and the server
// behaves. The loopback profile is the server as it is; the S3 profile puts a shaper in the
// bench process in front of it: every request waits a first-byte latency (LIST longer), and
// bodies flow at a per-request and an aggregate rate, as on a real S3 connection. A round trip
// per name is invisible on loopback and dominates here.
type profile struct {
	name        string
	latency     time.Duration // before the first byte of every answer
	listLatency time.Duration // instead, for a LIST
	perRequest  float64       // bytes/s each way, per request; 0 = unlimited
	total       float64       // bytes/s each way, all requests together; 0 = unlimited
}

var (
	loopbackProfile = profile{name: "loopback"}
	s3Profile       = profile{name: "S3-like", latency: 20 * time.Millisecond, listLatency: 40 * time.Millisecond,
		perRequest: 40e6, total: 400e6}
)

func (p profile) shaped() bool {
	return p.latency > 0 || p.listLatency > 0 || p.perRequest > 0 || p.total > 0
}

// shaper is the S3 profile's proxy.
type shaper struct {
	p        profile
	srv      *http.Server
	url      string
	up, down *pacer // aggregate pacing of request and response bodies
}

func startShaper(p profile, upstream string) (*shaper, error) {
	target, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &shaper{p: p, url: "http://" + ln.Addr().String(), up: newPacer(p.total), down: newPacer(p.total)}
	rp := httputil.NewSingleHostReverseProxy(target)
	base := rp.Director
	rp.Director = func(r *http.Request) {
		host := r.Host // the client signed the Host it sent: keep it
		base(r)
		r.Host = host
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &pacedReader{r: r.Body, per: newPacer(p.perRequest), all: s.up}
		}
	}
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		lat := p.latency
		if isList(resp.Request) {
			lat = p.listLatency
		}
		time.Sleep(lat)
		resp.Body = &pacedReader{r: resp.Body, per: newPacer(p.perRequest), all: s.down}
		return nil
	}
	s.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *shaper) close() { s.srv.Close() }

// isList: ListObjectsV2 (and ListObjects, ListMultipartUploads): a GET on the bucket itself.
func isList(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	q := r.URL.Query()
	return q.Has("list-type") || q.Has("uploads") || q.Has("delimiter") || q.Has("prefix")
}

// pacer hands out transfer time at a rate: each chunk of n bytes is given the next n/rate of
// the pacer's timeline, and waits until its share begins. A nil pacer does not pace.
type pacer struct {
	mu   sync.Mutex
	rate float64
	next time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{rate: rate}
}

func (p *pacer) wait(n int) {
	if p == nil || n <= 0 {
		return
	}
	p.mu.Lock()
	now := time.Now()
	start := p.next
	if start.Before(now) {
		start = now
	}
	p.next = start.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	p.mu.Unlock()
	if d := time.Until(start); d > 0 {
		time.Sleep(d)
	}
}

// pacedReader paces a body under its own request's pacer and the aggregate one, in chunks
// of at most 64 KiB so that concurrent bodies interleave.
type pacedReader struct {
	r        io.ReadCloser
	per, all *pacer
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if len(b) > 64<<10 {
		b = b[:64<<10]
	}
	n, err := p.r.Read(b)
	p.per.wait(n)
	p.all.wait(n)
	return n, err
}

func (p *pacedReader) Close() error { return p.r.Close() }

func (p profile) describe() string {
	if !p.shaped() {
		return p.name + " (the server as it is, over loopback)"
	}
	return fmt.Sprintf("%s (first byte after %v, LIST %v; %.0f MB/s per request, %.0f MB/s in all)",
		p.name, p.latency, p.listLatency, p.perRequest/1e6, p.total/1e6)
}
