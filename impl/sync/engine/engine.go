package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// Defaults and limits.
const (
	DefaultWorkers  = 8
	DefaultPartSize = 8 << 20
	// MinBackoff and MaxBackoff bound the wait before retrying a failed operation.
	MinBackoff = time.Second
	MaxBackoff = 30 * time.Second
	// flushAttempts is how many failed attempts of one path Flush sits through before it
	// reports the error: at unmount a broken network must not hang forever.
	flushAttempts = 3
	// partsInFlight bounds the concurrent parts of one multipart upload.
	partsInFlight = 4
	// maxSleep caps a wait, so a wall-clock jump cannot delay uploads for long.
	maxSleep = time.Minute
)

// ErrStopped is returned by Flush when Run is not running any more.
var ErrStopped = errors.New("sync engine stopped")

// Conflict is a precondition failure the layer could not resolve (see Config.OnConflict).
type Conflict struct {
	Op     local.Op
	Event  syncrule.Event // the UploadFailed or DeleteFailed, with Conflict set
	Remote *s3.ObjectInfo // what the bucket holds at Op.Key now; nil if nothing
	Err    error          // why the layer refused the rule's resolution
}

// Config configures an Engine.
type Config struct {
	// InferContentType sets each uploaded object's Content-Type from its key's extension
	// (--infer-content-type).
	InferContentType bool
	Layer            *local.Layer
	Store            s3.Store
	Params           syncrule.Params // WriteBackDelay etc.
	Clock            clock.Clock     // nil = the wall clock
	Log              *slog.Logger    // nil = discard
	// Workers is how many bucket operations run at once (default 8).
	Workers int
	// PartSize: objects larger than this are uploaded multipart in parts of this size
	// (default 8 MiB; S3 needs at least 5 MiB for every part but the last).
	PartSize int64
	// CopyThreshold: a rename's copy or an attribute change's copy onto itself of an object
	// larger than this is a multipart upload of server-side part copies (S3's CopyObject
	// refuses sources over 5 GiB). 0 = s3.CopyThreshold (5 GiB); tests lower it.
	CopyThreshold int64
	// CopyPartSize is the part size of such a copy (0 = s3.DefaultCopyPartSize, 512 MiB;
	// raised as needed to stay within 10,000 parts).
	CopyPartSize int64
	// Attrs is the user metadata to store with an object (s3fs-style POSIX headers); nil =
	// none. The caller passes the posixmeta encoding.
	Attrs func(info local.Info) map[string]string
	// Budget, if set, bounds the memory held by multipart parts across all uploads.
	Budget *memory.Budget
	// OnConflict, if set, is called when a conditional write or delete failed because the
	// bucket changed (C3, C6) and the layer refused to carry out the rule's resolution (the
	// move to lost+found and the import, C4); normally it carries it out and this is not
	// called. Returning nil means the conflict was dealt with and the op is
	// removed from the queue; an error keeps the op and the local data, and it is retried.
	OnConflict func(ctx context.Context, c Conflict) error
	// ConditionsUnsupported: the store ignores conditional requests (If-Match /
	// If-None-Match, x-amz-copy-source-if-match; see impl/s3/probe). Each conditional request
	// is then checked with a HEAD right before it and sent without the condition; a mismatch
	// is a conflict as a 412 would be. Between the HEAD and the request another writer's
	// version can still be overwritten (see headChecked).
	ConditionsUnsupported bool
}

// Stats are counts for a status command.
type Stats struct {
	PendingOps int // queued bucket operations not finished yet
	RunningOps int // of which running now
	DirtyFiles int // records with changes the bucket lacks, at the last scan
	Uploads    uint64
	Deletes    uint64
	Renames    uint64
	Failures   uint64 // failed attempts, retried later
	Conflicts  uint64 // precondition failures (C3, C6)
	// UploadedBytes counts the data bytes of the uploads done (an attribute-only change, a
	// copy in place, counts none).
	UploadedBytes int64
	LastError     string
	LastErrorAt   time.Time
	// Resolved counts the conflicts the bucket won (Resolution), the sequence number of the
	// newest one.
	Resolved uint64
}

// Resolution is one conflict the bucket won (C4, C6): what happened to the local version.
type Resolution struct {
	Seq  uint64 // Stats.Resolved when it was recorded
	At   time.Time
	Path string // the path the conflict was at
	// LostFound is where the local version went ("" if none was kept: a local delete
	// dropped, a directory's attributes).
	LostFound string
	What      string // in words: what the bucket did and what is at Path now
}

// resolutionsKept bounds the conflict history kept for `mount-s3 sync --flush` summaries: the
// log and lost+found keep every one.
const resolutionsKept = 1000

// Engine is the write-back worker. Its methods are safe for concurrent use.
type Engine struct {
	cfg        Config
	log        *slog.Logger
	tickParams syncrule.Params

	wake        chan struct{}
	needPending atomic.Bool // reread the queue: something outside the engine may have added ops
	// rescan: list the dirty records at the next step even if no due time has come. Set by
	// every internal wake-up (an op's result can make a record due at once) but not by Notify:
	// a local change is never due before now+WriteBackDelay, so it needs no listing before
	// scanBefore. Without this every close listed every dirty record, and creating n files
	// cost O(n^2).
	rescan     atomic.Bool
	scanBefore time.Time     // owned by the Run goroutine
	kickSeq    atomic.Uint64 // counts Notify calls and internal wake-ups
	stepSeq    atomic.Uint64 // the kickSeq seen by the last completed loop step

	mu         sync.Mutex
	state      runState                    // GUARDED_BY(mu)
	ops        map[uint64]*opEntry         // GUARDED_BY(mu): known unfinished ops
	byKey      map[string][]uint64         // GUARDED_BY(mu): op ids per key, in queue order
	byPath     map[string]int              // GUARDED_BY(mu): unfinished ops per op.Path
	finished   map[uint64]struct{}         // GUARDED_BY(mu): Done'd ids that a queue listing may still show
	maxSeen    uint64                      // GUARDED_BY(mu): highest op id known
	running    int                         // GUARDED_BY(mu)
	pathRetry  map[string]retry            // GUARDED_BY(mu): paths backing off after a failure
	superseded map[string]supersession     // GUARDED_BY(mu)
	conflicted map[uint64]syncrule.Version // GUARDED_BY(mu): kept ops -> the remote version that conflicted
	waiters    []*flushWaiter              // GUARDED_BY(mu)
	flushErr   error                       // GUARDED_BY(mu): a persistent failure to report to waiters
	stats      Stats                       // GUARDED_BY(mu)
	resolved   []Resolution                // GUARDED_BY(mu): the newest resolutionsKept, oldest first
}

type runState uint8

const (
	notStarted runState = iota
	running
	stopped
)

type opEntry struct {
	op       local.Op
	keys     []string
	running  bool
	retryAt  time.Time // the op waits until then (a kept op after a failure)
	attempts int
}

type retry struct {
	at       time.Time
	attempts int
}

// supersession: our own upload replaced from with to at a key after the record that owned it
// moved away (a rename during the upload). The rename's copy checks the source against its
// base; without this it would take our own newer object for someone else's change.
type supersession struct{ from, to syncrule.Version }

type flushWaiter struct{ done chan error }

// New checks cfg and fills in defaults.
func New(cfg Config) (*Engine, error) {
	if cfg.Layer == nil || cfg.Store == nil {
		return nil, errors.New("sync engine: Layer and Store are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.ConditionsUnsupported {
		cfg.Store = headChecked{cfg.Store}
	}
	cfg.Store = journaled{Store: cfg.Store, layer: cfg.Layer}
	e := &Engine{
		cfg:        cfg,
		log:        cfg.Log,
		tickParams: cfg.Params,
		wake:       make(chan struct{}, 1),
		ops:        map[uint64]*opEntry{},
		byKey:      map[string][]uint64{},
		byPath:     map[string]int{},
		finished:   map[uint64]struct{}{},
		pathRetry:  map[string]retry{},
		superseded: map[string]supersession{},
		conflicted: map[uint64]syncrule.Version{},
	}
	// Expiry drops data, which Apply does not do (Layer.Expire does): a Tick from the engine
	// must only ever start write-backs.
	e.tickParams.ExpireAfter = -1
	return e, nil
}

// Notify tells the engine something changed locally (a write, close, unlink, rename). It is
// cheap and never blocks.
func (e *Engine) Notify() {
	e.needPending.Store(true)
	e.wakeUp()
}

// poke wakes the loop for a full round, without rereading the queue.
func (e *Engine) poke() {
	e.rescan.Store(true)
	e.wakeUp()
}

func (e *Engine) wakeUp() {
	e.kickSeq.Add(1)
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Stats returns the current counts.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.PendingOps, s.RunningOps = len(e.ops), e.running
	return s
}

// Flush writes back everything dirty now, ignoring the window (syncrule.Flush), and returns
// once the queue is empty and no record is dirty. It returns early with ctx's error, or with
// a failure that retrying does not fix soon (a conflict, a denied request, or flushAttempts
// failures of one path). Run must be running (or about to start) for Flush to progress.
func (e *Engine) Flush(ctx context.Context) error {
	w := &flushWaiter{done: make(chan error, 1)}
	e.mu.Lock()
	if e.state == stopped {
		e.mu.Unlock()
		return ErrStopped
	}
	e.waiters = append(e.waiters, w)
	e.mu.Unlock()
	e.Notify()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		e.mu.Lock()
		for i, x := range e.waiters {
			if x == w {
				e.waiters = append(e.waiters[:i], e.waiters[i+1:]...)
				break
			}
		}
		e.mu.Unlock()
		return ctx.Err()
	}
}

// Run writes back until ctx is cancelled. It starts by replaying the queue: recovery after a
// crash is the normal start (SYNC.md invariant 7). Operations cut short by the cancellation
// stay queued for the next Run.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.state != notStarted {
		e.mu.Unlock()
		return errors.New("sync engine: Run called twice")
	}
	e.state = running
	e.mu.Unlock()

	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		e.mu.Lock()
		e.state = stopped
		for _, w := range e.waiters {
			w.done <- ErrStopped
		}
		e.waiters = nil
		e.mu.Unlock()
	}()

	if err := e.recover(); err != nil {
		return err
	}
	e.abortOrphans(ctx)
	for {
		if ctx.Err() != nil {
			return nil
		}
		seq := e.kickSeq.Load()
		next, err := e.step(ctx, &wg)
		if errors.Is(err, local.ErrClosed) {
			return err
		}
		if err != nil {
			e.logf(slog.LevelError, "sync: error: %v", err)
			e.setLastError(err)
			if next.IsZero() || next.After(e.now().Add(MinBackoff)) {
				next = e.now().Add(MinBackoff)
			}
		}
		e.stepSeq.Store(seq)
		e.sleep(ctx, next)
	}
}

func (e *Engine) now() time.Time { return e.cfg.Clock.Now() }

// recover loads the queue and unsticks records whose in-flight op is missing from it. That
// cannot happen while the layer queues ops in the transaction that starts them, but a record
// stuck in flight would never be uploaded again, so it is checked at every start.
func (e *Engine) recover() error {
	if err := e.loadPending(); err != nil {
		return fmt.Errorf("sync engine: reading the queue: %w", err)
	}
	dirty, err := e.cfg.Layer.Dirty()
	if err != nil {
		return fmt.Errorf("sync engine: listing dirty records: %w", err)
	}
	e.mu.Lock()
	type orphan struct {
		path string
		s    syncrule.State
	}
	var orphans []orphan
	for _, info := range dirty {
		s := info.State
		if s.InFlight == syncrule.OpNone || e.hasOpLocked(info.Path, s) {
			continue
		}
		orphans = append(orphans, orphan{info.Path, s})
	}
	n := len(e.ops)
	e.mu.Unlock()
	if n > 0 {
		e.logf(slog.LevelInfo, "sync: resuming %d queued bucket operations", n)
	}
	for _, o := range orphans {
		var ev syncrule.Event = syncrule.UploadFailed{Gen: o.s.InFlightGen}
		if o.s.InFlight == syncrule.OpDelete {
			ev = syncrule.DeleteFailed{Gen: o.s.InFlightGen}
		}
		e.logf(slog.LevelWarn, "sync: warning: /%s was %v in flight (generation %d) with no queued operation; retrying it",
			o.path, o.s.InFlight, o.s.InFlightGen)
		if _, err := e.cfg.Layer.Apply(o.path, ev, e.cfg.Params); err != nil {
			return fmt.Errorf("sync engine: recovering /%s: %w", o.path, err)
		}
	}
	return nil
}

// hasOpLocked reports whether a known op is the one s has in flight. REQUIRES: e.mu held.
func (e *Engine) hasOpLocked(path string, s syncrule.State) bool {
	want := local.OpUpload
	if s.InFlight == syncrule.OpDelete {
		want = local.OpDelete
	}
	for _, en := range e.ops {
		if en.op.Path == path && en.op.Kind == want && en.op.Gen == s.InFlightGen {
			return true
		}
	}
	return false
}

// loadPending merges the durable queue into the known ops.
func (e *Engine) loadPending() error {
	e.mu.Lock()
	before := make([]uint64, 0, len(e.finished))
	for id := range e.finished {
		before = append(before, id)
	}
	e.mu.Unlock()
	ops, err := e.cfg.Layer.Pending()
	if err != nil {
		return err
	}
	listed := make(map[uint64]bool, len(ops))
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, op := range ops {
		listed[op.ID] = true
		if _, done := e.finished[op.ID]; !done {
			e.addLocked(op)
		}
	}
	// An id finished before the listing started cannot be listed again.
	for _, id := range before {
		if !listed[id] {
			delete(e.finished, id)
		}
	}
	return nil
}

// addOps adds ops that Apply just queued. The queue's ids are consecutive, so a gap after
// the highest id known means something else (a rename) queued ops meanwhile; they may be
// for the same keys and must run first, so the queue is reread before anything is started.
func (e *Engine) addOps(ops []local.Op) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, op := range ops {
		if op.ID != e.maxSeen+1 {
			e.needPending.Store(true)
		}
		e.addLocked(op)
	}
}

// addLocked records op unless it is known. REQUIRES: e.mu held.
func (e *Engine) addLocked(op local.Op) {
	if _, ok := e.ops[op.ID]; ok {
		return
	}
	en := &opEntry{op: op, keys: []string{op.Key}}
	if op.Kind == local.OpRename && op.DstKey != op.Key {
		en.keys = append(en.keys, op.DstKey)
	}
	e.ops[op.ID] = en
	for _, k := range en.keys {
		ids := e.byKey[k]
		i := sort.Search(len(ids), func(i int) bool { return ids[i] > op.ID })
		ids = append(ids, 0)
		copy(ids[i+1:], ids[i:])
		ids[i] = op.ID
		e.byKey[k] = ids
	}
	e.byPath[op.Path]++
	e.maxSeen = max(e.maxSeen, op.ID)
}

// removeLocked forgets a finished op. REQUIRES: e.mu held.
func (e *Engine) removeLocked(id uint64) {
	en := e.ops[id]
	if en == nil {
		return
	}
	delete(e.ops, id)
	e.finished[id] = struct{}{}
	delete(e.conflicted, id)
	for _, k := range en.keys {
		ids := e.byKey[k]
		for i, x := range ids {
			if x == id {
				ids = append(ids[:i], ids[i+1:]...)
				break
			}
		}
		if len(ids) == 0 {
			delete(e.byKey, k)
		} else {
			e.byKey[k] = ids
		}
	}
	if e.byPath[en.op.Path]--; e.byPath[en.op.Path] <= 0 {
		delete(e.byPath, en.op.Path)
	}
}

// step does one round: start what is due, start the runnable ops, and say when the next
// round is due (zero: nothing is, wait for Notify).
func (e *Engine) step(ctx context.Context, wg *sync.WaitGroup) (next time.Time, err error) {
	if e.needPending.Swap(false) {
		if err := e.loadPending(); err != nil {
			e.needPending.Store(true)
			return time.Time{}, fmt.Errorf("reading the queue: %w", err)
		}
	}
	now := e.now()
	e.mu.Lock()
	flushing := len(e.waiters) > 0
	e.mu.Unlock()
	if !flushing && !e.rescan.Swap(false) && now.Before(e.scanBefore) {
		// Only local changes happened since the last listing: nothing new is due yet. Start
		// the ops they queued (renames, deletes) and come back when something may be due.
		return earliest(e.scanBefore, e.dispatch(ctx, wg, now)), nil
	}
	dirty, err := e.cfg.Layer.Dirty()
	if err != nil {
		e.rescan.Store(true)
		return time.Time{}, fmt.Errorf("listing dirty records: %w", err)
	}
	e.mu.Lock()
	e.stats.DirtyFiles = len(dirty)
	e.mu.Unlock()
	defer func() {
		// The next listing is needed when something found now is due, or when a change made
		// after now could be: never later than now+WriteBackDelay.
		if err != nil {
			e.rescan.Store(true)
		}
		e.scanBefore = now.Add(e.tickParams.WriteBackDelay)
		if !next.IsZero() && next.Before(e.scanBefore) {
			e.scanBefore = next
		}
	}()

	for _, info := range dirty {
		s := info.State
		if s.InFlight != syncrule.OpNone || s.LostFound {
			continue // its op's result moves it on
		}
		e.mu.Lock()
		blocked := e.byPath[info.Path] > 0
		r, backingOff := e.pathRetry[info.Path]
		e.mu.Unlock()
		if blocked {
			continue // a rename's copy to this key comes first; its completion wakes us
		}
		if backingOff && now.Before(r.at) {
			next = earliest(next, r.at)
			continue
		}
		var ev syncrule.Event
		switch {
		case flushing:
			ev = syncrule.Flush{Now: now}
		case syncrule.UploadDue(s, now, e.tickParams):
			ev = syncrule.Tick{Now: now}
		default:
			next = earliest(next, syncrule.DueAt(s, e.tickParams))
			continue
		}
		res, err := e.cfg.Layer.Apply(info.Path, ev, e.tickParams)
		if errors.Is(err, local.ErrNotFound) {
			continue // removed since the listing
		}
		if err != nil {
			if errors.Is(err, local.ErrClosed) {
				return time.Time{}, err
			}
			e.logf(slog.LevelError, "sync: error: starting the write-back of /%s: %v", info.Path, err)
			e.failPath(info.Path, err, false)
			continue
		}
		e.addOps(res.Ops)
		e.otherActions(info.Path, res.Actions)
	}
	if e.needPending.Swap(false) {
		if err := e.loadPending(); err != nil {
			e.needPending.Store(true)
			return time.Time{}, fmt.Errorf("reading the queue: %w", err)
		}
	}
	next = earliest(next, e.dispatch(ctx, wg, now))
	if len(dirty) == 0 {
		e.checkFlushDone()
	} else {
		e.checkFlushErr()
	}
	if !next.IsZero() && !next.After(now) {
		// Due but not started (a race with a local change): look again soon, never spin.
		next = now.Add(MinBackoff)
	}
	return next, nil
}

// otherActions handles what Apply returned besides the ops.
func (e *Engine) otherActions(path string, acts []syncrule.Action) {
	for _, a := range acts {
		switch a.(type) {
		case syncrule.StartUpload, syncrule.StartDelete, syncrule.MoveToLostFound, syncrule.ImportRemote:
			// Carried out by the layer (Apply) and logged by conflict.
		case syncrule.InvalidateKernelCache:
			// The FUSE layer's attribute timeout bounds how long the kernel shows the old
			// version (syncfs.Config.AttrTTL).
		case syncrule.CheckRemote:
			// Only a remote change seen during an op asks for this, and the engine feeds
			// none yet (that is the poller's job).
			e.logf(slog.LevelInfo, "sync: /%s: a remote check was asked for; the poller will see it", path)
		default:
			e.logf(slog.LevelInfo, "sync: /%s: action %T not handled by the engine", path, a)
		}
	}
}

// dispatch starts every runnable op while workers are free and returns the earliest time a
// waiting op becomes runnable.
func (e *Engine) dispatch(ctx context.Context, wg *sync.WaitGroup, now time.Time) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	var next time.Time
	var heads []uint64
	for _, ids := range e.byKey {
		heads = append(heads, ids[0])
	}
	sort.Slice(heads, func(i, j int) bool { return heads[i] < heads[j] })
	for _, id := range heads {
		if e.running >= e.cfg.Workers {
			break
		}
		en := e.ops[id]
		if en == nil || en.running || !e.isHeadLocked(en) {
			continue
		}
		if now.Before(en.retryAt) {
			next = earliest(next, en.retryAt)
			continue
		}
		en.running = true
		e.running++
		wg.Add(1)
		go func(op local.Op) {
			defer wg.Done()
			res := e.execute(ctx, op)
			e.complete(op, res)
			e.poke()
		}(en.op)
	}
	return next
}

// isHeadLocked: no earlier op shares a key with en. REQUIRES: e.mu held.
func (e *Engine) isHeadLocked(en *opEntry) bool {
	for _, k := range en.keys {
		if ids := e.byKey[k]; len(ids) == 0 || ids[0] != en.op.ID {
			return false
		}
	}
	return true
}

// result is how an op ended.
type result struct {
	err error // nil: done (or found stale and dropped)
	// kept: the op stays queued and runs again after a backoff (a rename, an unresolved
	// conflict, a failure to record the result).
	kept bool
	// backoff: the failure was reported to the rule, which owes a new op; the path waits.
	backoff    bool
	persistent bool // Flush gives up on it at once
	cancelled  bool // Run is ending: leave everything for the next start
	kind       string
	bytes      int64 // data bytes an upload sent
}

// complete records an op's result in the scheduler.
func (e *Engine) complete(op local.Op, r result) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running--
	en := e.ops[op.ID]
	if r.cancelled {
		if en != nil {
			en.running = false
		}
		return
	}
	attempts := 0
	if r.kept && en != nil {
		en.running = false
		en.attempts++
		attempts = en.attempts
		en.retryAt = now.Add(backoff(en.attempts))
	} else {
		e.removeLocked(op.ID)
	}
	if r.backoff {
		rt := e.pathRetry[op.Path]
		rt.attempts++
		rt.at = now.Add(backoff(rt.attempts))
		e.pathRetry[op.Path] = rt
		attempts = rt.attempts
	} else if r.err == nil {
		delete(e.pathRetry, op.Path)
	}
	switch {
	case r.err == nil && r.kind == "upload":
		e.stats.Uploads++
		e.stats.UploadedBytes += r.bytes
	case r.err == nil && r.kind == "delete":
		e.stats.Deletes++
	case r.err == nil && r.kind == "rename":
		e.stats.Renames++
	case r.err != nil:
		e.stats.Failures++
		e.stats.LastError, e.stats.LastErrorAt = r.err.Error(), now
		if len(e.waiters) > 0 && (r.persistent || attempts >= flushAttempts) && e.flushErr == nil {
			e.flushErr = r.err
		}
	}
}

// failPath backs a path off after a failure outside an op.
func (e *Engine) failPath(path string, err error, persistent bool) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	rt := e.pathRetry[path]
	rt.attempts++
	rt.at = now.Add(backoff(rt.attempts))
	e.pathRetry[path] = rt
	e.stats.Failures++
	e.stats.LastError, e.stats.LastErrorAt = err.Error(), now
	if len(e.waiters) > 0 && (persistent || rt.attempts >= flushAttempts) && e.flushErr == nil {
		e.flushErr = err
	}
}

func (e *Engine) setLastError(err error) {
	now := e.now()
	e.mu.Lock()
	e.stats.LastError, e.stats.LastErrorAt = err.Error(), now
	e.mu.Unlock()
}

// recordResolution keeps a conflict the bucket won for ResolutionsSince.
func (e *Engine) recordResolution(r Resolution) {
	r.At = e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.Resolved++
	r.Seq = e.stats.Resolved
	if len(e.resolved) == resolutionsKept {
		e.resolved = append(e.resolved[:0], e.resolved[1:]...)
	}
	e.resolved = append(e.resolved, r)
}

// ResolutionsSince returns the conflicts the bucket won after the one numbered seq (a
// Stats.Resolved read earlier), oldest first, and how many more there were than it kept.
func (e *Engine) ResolutionsSince(seq uint64) (rs []Resolution, dropped uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.resolved {
		if r.Seq > seq {
			rs = append(rs, r)
		}
	}
	if n := e.stats.Resolved - seq; n > uint64(len(rs)) {
		dropped = n - uint64(len(rs))
	}
	return rs, dropped
}

// checkFlushDone releases the Flush waiters if the layer is fully written back. The queue is
// read again: a rename may have queued ops since this step's listing.
func (e *Engine) checkFlushDone() {
	e.mu.Lock()
	idle := len(e.waiters) > 0 && len(e.ops) == 0
	e.mu.Unlock()
	if !idle {
		e.checkFlushErr()
		return
	}
	ops, err := e.cfg.Layer.Pending()
	if err != nil || len(ops) > 0 {
		e.needPending.Store(true)
		e.poke()
		return
	}
	dirty, err := e.cfg.Layer.Dirty()
	if err != nil || len(dirty) > 0 {
		e.poke()
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.ops) == 0 {
		e.releaseLocked(nil)
	}
}

// checkFlushErr fails the Flush waiters if a persistent failure happened.
func (e *Engine) checkFlushErr() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.flushErr != nil {
		e.releaseLocked(e.flushErr)
	}
}

// releaseLocked answers every waiter. REQUIRES: e.mu held.
func (e *Engine) releaseLocked(err error) {
	for _, w := range e.waiters {
		w.done <- err
	}
	e.waiters, e.flushErr = nil, nil
}

// sleep waits for a Notify, an op's completion, ctx, or the clock reaching next: a timer of
// the engine's Clock, the same code under the tests' fake clock as in production.
func (e *Engine) sleep(ctx context.Context, next time.Time) {
	var timer <-chan time.Time
	if !next.IsZero() {
		now := e.now()
		if !now.Before(next) {
			return
		}
		t := e.cfg.Clock.TimerAt(earliest(next, now.Add(maxSleep)))
		defer t.Stop()
		timer = t.C()
	}
	select {
	case <-ctx.Done():
	case <-e.wake:
	case <-timer:
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// backoff is the wait after the nth consecutive failure.
func backoff(n int) time.Duration {
	d := MinBackoff
	for i := 1; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// logf logs one line at level, the message built as by fmt.Sprintf: one line per bucket
// operation is debug, a failure that will be retried an error, a conflict or a kept object a
// warning.
func (e *Engine) logf(level slog.Level, format string, args ...any) {
	e.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}
