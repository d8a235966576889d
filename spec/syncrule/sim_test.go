package syncrule_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	. "github.com/mount-s3/mount-s3/spec/syncrule"
)

// The random driver of the property tests: one path, random events at random times.

// step is one application of Next, as the properties see it.
type step struct {
	pre, post State
	e         Event
	acts      []Action
	p         Params
}

// sim drives one path through random events at random times. Operation results mostly answer
// the operation in flight, and sometimes a stale or future one; remote observations mostly
// come from a small pool that includes the base and this mount's own last upload, so that
// conflicts, echoes of our own writes and stale reports all come up.
type sim struct {
	p    Params
	now  time.Time
	s    State
	n    int
	last Version
}

var (
	startGen = rapid.SampledFrom([]State{{}, clean, dirty, uploading, changedDuring, newFile, tombstone, lostFound,
		with(clean, func(s *State) { s.Data = ExpiredData }), with(clean, func(s *State) { s.Data = NoData })})
	timeSteps = []time.Duration{0, 0, time.Millisecond, sec, 30 * sec, 59 * sec, 60 * sec, 61 * sec, time.Hour, 31 * day}
)

func newSim(t *rapid.T, start State) *sim {
	return &sim{s: start, now: t0, p: Params{
		WriteBackDelay:  rapid.SampledFrom([]time.Duration{0, sec, DefaultWriteBackDelay}).Draw(t, "delay"),
		ExpireAfter:     rapid.SampledFrom([]time.Duration{-1, 0, time.Hour, DefaultExpireAfter}).Draw(t, "expireAfter"),
		ImportThreshold: rapid.SampledFrom([]int64{0, DefaultImportThreshold}).Draw(t, "threshold"),
	}}
}

func (m *sim) fresh() Version {
	m.n++
	m.last = Version{ETag: fmt.Sprintf(`"u%d"`, m.n), VersionID: fmt.Sprintf("vu%d", m.n)}
	return m.last
}

func (m *sim) event(t *rapid.T) Event {
	m.now = m.now.Add(rapid.SampledFrom(timeSteps).Draw(t, "dt"))
	if d := DueAt(m.s, m.p); d.After(m.now) && rapid.IntRange(0, 3).Draw(t, "jumpToDue") == 0 {
		m.now = d
	}
	s := m.s
	gen := rapid.SampledFrom([]uint64{s.InFlightGen, s.InFlightGen, s.InFlightGen, s.Gen, s.CleanGen, s.Gen + 1}).Draw(t, "gen")
	remote := rapid.SampledFrom([]Version{{}, s.Base, vBase, vRem, {ETag: vRem.ETag}, m.last}).Draw(t, "remote")
	size := rapid.SampledFrom([]int64{0, 7, 1 << 20}).Draw(t, "size")
	switch rapid.IntRange(0, 19).Draw(t, "kind") {
	case 0, 1:
		return LocalWrite{At: m.now, MetadataOnly: rapid.Bool().Draw(t, "metadataOnly"), Size: size}
	case 2:
		return LocalDelete{At: m.now}
	case 3:
		return Read{At: m.now}
	case 4, 5:
		return Close{At: m.now, Fsync: rapid.Bool().Draw(t, "fsync")}
	case 6, 7, 8:
		return Tick{Now: m.now}
	case 9:
		return Flush{Now: m.now}
	case 10, 11:
		return UploadSucceeded{Gen: gen, Version: m.fresh()}
	case 12:
		return UploadFailed{Gen: gen, Conflict: rapid.Bool().Draw(t, "conflict"), Remote: remote, RemoteSize: size}
	case 13:
		return DeleteSucceeded{Gen: gen}
	case 14:
		return DeleteFailed{Gen: gen, Conflict: rapid.Bool().Draw(t, "conflict"), Remote: remote, RemoteSize: size}
	case 15, 16:
		return RemoteChanged{Version: remote, Size: size}
	case 17:
		return RemoteDeleted{}
	case 18:
		return DataImported{Version: remote, At: m.now}
	default:
		return DataExpired{}
	}
}

func (m *sim) apply(t *rapid.T, e Event, check func(*rapid.T, step)) {
	post, acts := Next(m.s, e, m.p)
	if again, acts2 := Next(m.s, e, m.p); !reflect.DeepEqual(again, post) || !reflect.DeepEqual(acts2, acts) {
		t.Fatalf("Next is not deterministic for %#v on %+v", e, m.s)
	}
	check(t, step{pre: m.s, post: post, e: e, acts: acts, p: m.p})
	m.s = post
}

// run draws a start state and a sequence of events and checks every step.
func run(t *rapid.T, start State, check func(*rapid.T, step)) *sim {
	m := newSim(t, start)
	for i, n := 0, rapid.IntRange(1, 40).Draw(t, "steps"); i < n; i++ {
		m.apply(t, m.event(t), check)
	}
	return m
}

// quiesce lets every pending write-back happen and succeed: the engine's eventual progress.
func (m *sim) quiesce(t *rapid.T, check func(*rapid.T, step)) {
	for i := 0; i < 10; i++ {
		var e Event
		switch {
		case m.s.InFlight == OpUpload:
			e = UploadSucceeded{Gen: m.s.InFlightGen, Version: m.fresh()}
		case m.s.InFlight == OpDelete:
			e = DeleteSucceeded{Gen: m.s.InFlightGen}
		case m.s.Dirty() && !m.s.LostFound:
			if d := DueAt(m.s, m.p); d.After(m.now) {
				m.now = d
			}
			e = Tick{Now: m.now}
		default:
			return
		}
		m.apply(t, e, check)
	}
}

func index[A Action](acts []Action) int {
	for i, a := range acts {
		if _, ok := a.(A); ok {
			return i
		}
	}
	return -1
}

func has[A Action](acts []Action) bool { return index[A](acts) >= 0 }

func property(t *testing.T, check func(*rapid.T, step)) {
	rapid.Check(t, func(t *rapid.T) { run(t, startGen.Draw(t, "start"), check) })
}
