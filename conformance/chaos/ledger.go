package chaos

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// event is one write or delete a program made of a path, in the order it made them.
type event struct {
	v   Version // the version written; zero for a delete
	del bool
	ok  bool // the call (close, unlink) returned success
	// enoent: the unlink said there was nothing to delete (counted as success).
	enoent bool
}

// Ledger records what programs did to each path, and collects violations.
type Ledger struct {
	mu         sync.Mutex
	events     map[string][]event  // GUARDED_BY(mu)
	violations []string            // GUARDED_BY(mu)
	reads      int                 // GUARDED_BY(mu)
	readErrs   int                 // GUARDED_BY(mu)
	truncated  int                 // GUARDED_BY(mu)
	trail      map[string][]string // GUARDED_BY(mu)
}

// Truncated records a read that a concurrent O_TRUNC ended early (see readWhole).
func (l *Ledger) Truncated() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	l.truncated++
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{events: map[string][]event{}} }

// Wrote records that a program wrote all of v to path and closed it, ok if the close succeeded.
func (l *Ledger) Wrote(path string, v Version, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events[path] = append(l.events[path], event{v: v, ok: ok})
}

// Deleted records an unlink of path, ok if it succeeded, enoent if it found nothing to
// delete (which counts as success).
func (l *Ledger) Deleted(path string, ok, enoent bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events[path] = append(l.events[path], event{del: true, ok: ok || enoent, enoent: enoent})
}

// Did records, with the time, what a program did to path, for a report (sync mode, whose
// verdict compares the bucket with a model, not with these events).
func (l *Ledger) Did(path, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.trail == nil {
		l.trail = map[string][]string{}
	}
	l.trail[path] = append(l.trail[path], time.Now().UTC().Format("15:04:05.000")+" "+what)
}

// Trail is what Did recorded for path, in order.
func (l *Ledger) Trail(path string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.trail[path], "; ")
}

// Violation records a broken invariant.
func (l *Ledger) Violation(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.violations = append(l.violations, fmt.Sprintf(format, args...))
}

// Read records a read: its error, or the bytes it returned, which must be a whole version
// whose tag is one of tags (any tag if tags is empty).
func (l *Ledger) Read(path string, b []byte, err error, tags ...string) {
	l.mu.Lock()
	l.reads++
	if err != nil {
		l.readErrs++
	}
	l.mu.Unlock()
	if err != nil {
		return
	}
	v, verr := Verify(b)
	switch {
	case verr != nil:
		l.Violation("read %s: wrong bytes: %v", path, verr)
	case len(tags) > 0 && !contains(tags, v.Tag):
		l.Violation("read %s: got %s, a version of another file", path, v)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// Allowed is what the bucket may hold at path after the events (streaming mode): the version
// of the last call that succeeded (absent after a delete), or that of any later call that
// failed, since a failed call may still have taken effect (its answer lost). absentOK says
// whether no object at all is allowed.
func (l *Ledger) Allowed(path string) (versions map[Version]bool, absentOK bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.events[path]
	last := -1
	for i, e := range evs {
		if e.ok {
			last = i
		}
	}
	versions = map[Version]bool{}
	if last < 0 {
		absentOK = true
	} else if evs[last].del {
		absentOK = true
	} else {
		versions[evs[last].v] = true
	}
	for _, e := range evs[last+1:] {
		if e.del {
			absentOK = true
		} else {
			versions[e.v] = true
		}
	}
	return versions, absentOK
}

// History is what programs did to path, in order, for a violation's report.
func (l *Ledger) History(path string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events[path] {
		what := "write " + e.v.String()
		if e.del {
			what = "delete"
			if e.enoent {
				what += " (ENOENT)"
			}
		}
		if !e.ok {
			what += " (failed)"
		}
		out = append(out, what)
	}
	return strings.Join(out, ", ")
}

// Paths are every path the ledger has events for, sorted.
func (l *Ledger) Paths() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for p := range l.events {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Violations returns what was recorded.
func (l *Ledger) Violations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.violations...)
}

// Stats is one line about the reads.
func (l *Ledger) Stats() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A streaming run records its writes and deletes as events, a sync run what its programs
	// did (creates, edits, renames, deletes) as trails: count both.
	n := 0
	for _, evs := range l.events {
		n += len(evs)
	}
	for _, t := range l.trail {
		n += len(t)
	}
	return fmt.Sprintf("%d writes, deletes and renames, %d reads (%d failed, %d ended early by a concurrent O_TRUNC)", n, l.reads, l.readErrs, l.truncated)
}

// Report joins violations for a failure message.
func Report(vs []string) string {
	if len(vs) > 30 {
		vs = append(vs[:30:30], fmt.Sprintf("... and %d more", len(vs)-30))
	}
	return strings.Join(vs, "\n")
}
