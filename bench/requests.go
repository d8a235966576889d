package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// reqStats counts what the embedded server is asked while the mount side of a row runs, so
// that a row far below its baseline can be explained by what the mount sent (an extra
// LIST per lookup, GETs that never overlap) rather than guessed at.
type reqStats struct {
	mu          sync.Mutex
	counts      map[string]int
	now, most   map[string]int // in flight now, and at most, by kind
	bucketLevel string         // "/bucket" as it appears in path-style URLs
}

func newReqStats(bucket string) *reqStats {
	return &reqStats{counts: map[string]int{}, now: map[string]int{}, most: map[string]int{}, bucketLevel: "/" + bucket}
}

func (s *reqStats) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := s.kind(r)
		s.mu.Lock()
		s.counts[k]++
		s.now[k]++
		s.most[k] = max(s.most[k], s.now[k])
		s.mu.Unlock()
		next.ServeHTTP(w, r)
		s.mu.Lock()
		s.now[k]--
		s.mu.Unlock()
	})
}

// kind names an S3 request from its method, path and query, as S3's API reference does.
func (s *reqStats) kind(r *http.Request) string {
	q := r.URL.Query()
	bucketOnly := strings.TrimSuffix(r.URL.Path, "/") == s.bucketLevel
	switch {
	case r.Method == http.MethodGet && bucketOnly:
		return "LIST"
	case r.Method == http.MethodGet:
		return "GET"
	case r.Method == http.MethodHead:
		return "HEAD"
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "PART"
	case r.Method == http.MethodPut:
		return "PUT"
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "CREATE-MPU"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "COMPLETE-MPU"
	}
	return r.Method
}

func (s *reqStats) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
	clear(s.most) // not now: a request in flight across the reset still ends
}

// String is e.g. "GET 130 (<=8 at once), HEAD 1, LIST 1": the concurrency is what shows
// whether the mount overlaps its requests as the baseline does.
func (s *reqStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for k, n := range s.counts {
		p := fmt.Sprintf("%s %d", k, n)
		if s.most[k] > 1 {
			p += fmt.Sprintf(" (<=%d at once)", s.most[k])
		}
		parts = append(parts, p)
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// reqSnap returns what the server was asked since the last call, and starts counting anew.
func (e *env) reqSnap() string {
	if e.reqs == nil {
		return ""
	}
	defer e.reqs.reset()
	return e.reqs.String()
}
