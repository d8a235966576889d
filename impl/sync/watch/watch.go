package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/importer"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// Sink is what the watcher needs of the local layer; *local.Layer implements it.
type Sink interface {
	// ApplyRemote feeds a remote change (syncrule.RemoteChanged or RemoteDeleted) for path,
	// whose object is at the key of kind (a directory's marker for KindDir, else the file
	// key), and commits what syncrule.Next decides (C2-C6).
	ApplyRemote(path string, kind local.Kind, ev syncrule.Event, p syncrule.Params) (local.Applied, error)
	// Stat returns the visible record at path (local.ErrNotFound if none).
	Stat(path string) (local.Info, error)
	// List returns the visible records of directory dir in name order.
	List(dir string) ([]local.Info, error)
	// ImportDir records names of dir that have no record at all, as the first listing does
	// (Y1), and adopts marker as dir's base if it has none.
	ImportDir(dir string, marker syncrule.Version, entries []local.Remote) error
	// Observe opens an observation of dir: until end is called, ImportDir and ApplyRemote
	// create no record for a name of dir whose record was removed meanwhile (guard 4).
	Observe(dir string) (end func())
	// Pending lists the queued bucket operations.
	Pending() ([]local.Op, error)
}

// DefaultInterval is the default of --poll-interval.
const DefaultInterval = 10 * time.Second

// Config configures a Watcher.
type Config struct {
	Layer  Sink
	Store  s3.Store
	Prefix string // the mount prefix: "" or ending in "/" (K8)
	Bucket string // notifications for other buckets are ignored; default Store.Bucket()
	Params syncrule.Params
	// Interval between two polls (--poll-interval); zero or negative: no polling (Run then
	// only processes event notifications).
	Interval time.Duration
	Log      *slog.Logger // default: discard
	Clock    clock.Clock  // when to poll; default the wall clock
	// OnChange, if set, is called with each path whose record a remote change changed, and
	// with each directory that gained entries: the mount tells the kernel to drop what it
	// cached of the file (syncfs.FS.RemoteChanged).
	OnChange func(path string)
	// Workers: directories listed at once by a poll, and keys from notifications checked at
	// once. Default 4.
	Workers int
	// QueueLimit: how many distinct keys from notifications may wait; more is answered with
	// 503. Default 10000.
	QueueLimit int
}

// Watcher polls the imported directories and processes event notifications (C2). Its methods
// are safe for concurrent use.
type Watcher struct {
	// Constant data.
	cfg Config

	// Mutable state: the queue of keys from notifications.
	mu     sync.Mutex
	queue  []string        // GUARDED_BY(mu)
	queued map[string]bool // GUARDED_BY(mu): the keys in queue
	busy   map[string]int  // GUARDED_BY(mu): retries of keys whose file was open
	active int             // GUARDED_BY(mu): keys being checked
	wake   chan struct{}   // a key was queued
	polls  sync.Mutex      // one PollOnce at a time
}

// New makes a Watcher. It does no I/O and starts nothing: Run does.
func New(cfg Config) *Watcher {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Bucket == "" && cfg.Store != nil {
		cfg.Bucket = cfg.Store.Bucket()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = 10000
	}
	return &Watcher{cfg: cfg, queued: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// Run polls every Interval and processes the keys that Handler queues, until ctx is done.
// Errors of one round are logged; the next round tries again.
func (w *Watcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.eventWorker(ctx)
		}()
	}
	defer wg.Wait()
	if w.cfg.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	clock.Every(ctx, w.cfg.Clock, w.cfg.Interval, func(time.Time) {
		if err := w.PollOnce(ctx); err != nil && ctx.Err() == nil {
			w.logf(slog.LevelWarn, "poll for remote changes: %v", err)
		}
	})
	return nil
}

// PollOnce lists every imported directory once and feeds what changed to the layer. It goes
// on after an error in one directory and returns them all.
func (w *Watcher) PollOnce(ctx context.Context) error {
	w.polls.Lock()
	defer w.polls.Unlock()
	busy, err := w.pendingKeys()
	if err != nil {
		return err
	}
	root, err := w.cfg.Layer.Stat("")
	if err != nil {
		return err
	}
	if !root.Imported {
		return nil
	}

	// A fixed set of workers takes directories from todo; a directory's imported
	// subdirectories are added as it is done.
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		todo    = []local.Info{root}
		running int
		errs    []error
	)
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				for len(todo) == 0 && running > 0 {
					cond.Wait()
				}
				if len(todo) == 0 {
					mu.Unlock()
					cond.Broadcast()
					return
				}
				d := todo[len(todo)-1]
				todo = todo[:len(todo)-1]
				running++
				mu.Unlock()

				subdirs, err := w.pollDir(ctx, d, busy)

				mu.Lock()
				running--
				if err != nil {
					errs = append(errs, err)
				}
				if ctx.Err() == nil {
					todo = append(todo, subdirs...)
				}
				cond.Broadcast()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// change is a discrepancy a listing found: ev for the record snap, read before the listing.
type change struct {
	snap local.Info
	ev   syncrule.Event
}

// pollDir lists directory self (imported) once and feeds the differences with its records to
// the layer. It returns the imported subdirectories to poll next.
func (w *Watcher) pollDir(ctx context.Context, self local.Info, busy map[string]bool) ([]local.Info, error) {
	dir := self.Path
	defer w.cfg.Layer.Observe(dir)() // guard 4
	// The records first, the listing after (guard 1 of the package doc).
	recs, err := w.cfg.Layer.List(dir)
	if err != nil {
		if gone(err) {
			return nil, nil
		}
		return nil, err
	}
	var subdirs []local.Info
	byName := make(map[string]local.Info, len(recs))
	for _, r := range recs {
		_, name := keymap.Split(r.Path)
		if dir == "" && syncrule.InLostFound("", name) {
			continue // C5: local only, never polled or compared
		}
		byName[name] = r
		if r.Kind == local.KindDir && r.Imported {
			subdirs = append(subdirs, r)
		}
	}

	l, err := importer.ListDir(ctx, w.cfg.Store, w.cfg.Prefix, dir)
	if err != nil {
		return subdirs, err
	}

	var changes []change
	for name, r := range byName {
		if r.Kind == local.KindDir {
			continue // a directory's object is its marker, compared in its own listing
		}
		if busy[keymap.FileKey(w.cfg.Prefix, r.Path)] {
			continue
		}
		o, ok := l.Objects[name]
		if ev, _ := eventFor(r, ok, importer.VersionOf(o), o.Size); ev != nil {
			changes = append(changes, change{r, ev})
		}
	}
	// The directory's own marker (Y8). The root has none (K8).
	var adopt syncrule.Version
	if dir != "" && !busy[keymap.DirKey(w.cfg.Prefix, dir)] {
		ev, adoptIt := eventFor(self, !l.Marker.IsZero(), l.Marker, 0)
		if adoptIt {
			adopt = l.Marker
		} else if ev != nil {
			changes = append(changes, change{self, ev})
		}
	}

	// Names with no visible record: imported as the first listing would (package doc).
	var add []local.Remote
	for _, e := range l.Entries {
		if _, ok := byName[e.Name]; ok || dir == "" && syncrule.InLostFound("", e.Name) {
			continue
		}
		path := keymap.Join(dir, e.Name)
		if e.Kind == keymap.Dir {
			if !busy[keymap.DirKey(w.cfg.Prefix, path)] {
				add = append(add, local.Remote{Name: e.Name, Kind: local.KindDir})
			}
			continue
		}
		if busy[keymap.FileKey(w.cfg.Prefix, path)] {
			continue
		}
		o := l.Objects[e.Name]
		add = append(add, local.Remote{Name: e.Name, Kind: local.KindFile, Version: importer.VersionOf(o), Size: o.Size, Mtime: o.LastModified})
	}

	var errs []error
	if len(changes) > 0 {
		// Ops queued while we listed (guard 2).
		busy2, err := w.pendingKeys()
		if err != nil {
			return subdirs, err
		}
		for _, c := range changes {
			errs = append(errs, w.applyChecked(c, busy2))
		}
	}
	if len(add) > 0 || !adopt.IsZero() {
		errs = append(errs, w.importNew(dir, adopt, add))
	}
	return subdirs, errors.Join(errs...)
}

// eventFor is what an observation of rec's object says (package doc, "What is compared"): the
// object exists with version v and size, or not. A directory's object is its marker: a
// vanished one is left alone, as is a vanished directory, and one found for a directory with
// no base is adopted (adopt), as its first listing would.
func eventFor(rec local.Info, exists bool, v syncrule.Version, size int64) (ev syncrule.Event, adopt bool) {
	base := rec.State.Base
	if rec.Kind == local.KindDir {
		switch {
		case exists && base.IsZero():
			return nil, true
		case exists && !v.Same(base):
			return syncrule.RemoteChanged{Version: v}, false
		}
		return nil, false
	}
	switch {
	case exists && !v.Same(base):
		return syncrule.RemoteChanged{Version: v, Size: size}, false
	case !exists && !base.IsZero():
		return syncrule.RemoteDeleted{}, false
	}
	return nil, false
}

// applyChecked applies c if the record still has the base and class it had before the
// observation and no operation on its key was queued since (guards 1 and 2).
func (w *Watcher) applyChecked(c change, busy map[string]bool) error {
	path := c.snap.Path
	if busy[w.keyOf(c.snap.Kind, path)] {
		return nil
	}
	fresh, err := w.cfg.Layer.Stat(path)
	if err != nil {
		if gone(err) {
			return nil
		}
		return err
	}
	if (fresh.Kind == local.KindDir) != (c.snap.Kind == local.KindDir) || fresh.State.Base != c.snap.State.Base {
		return nil // changed under the observation: the next round decides
	}
	return w.apply(path, fresh.Kind, c.ev)
}

// importNew records new names of dir (and adopts its marker), then feeds RemoteChanged to the
// file names that ImportDir left alone because a tombstone was there (C6).
func (w *Watcher) importNew(dir string, marker syncrule.Version, add []local.Remote) error {
	if err := w.cfg.Layer.ImportDir(dir, marker, add); err != nil {
		if gone(err) {
			return nil
		}
		return err
	}
	if len(add) > 0 {
		w.logf(slog.LevelInfo, "remote change: %d new entries in /%s", len(add), dir)
		w.changed(dir)
	}
	var errs []error
	for _, e := range add {
		if e.Kind != local.KindFile {
			continue
		}
		path := keymap.Join(dir, e.Name)
		if _, err := w.cfg.Layer.Stat(path); !errors.Is(err, local.ErrNotFound) {
			// Imported, or a record a program made meanwhile: its upload's precondition
			// finds the conflict (C3).
			continue
		}
		errs = append(errs, w.apply(path, local.KindFile, syncrule.RemoteChanged{Version: e.Version, Size: e.Size}))
	}
	return errors.Join(errs...)
}

// apply feeds ev for path to the layer.
func (w *Watcher) apply(path string, kind local.Kind, ev syncrule.Event) error {
	res, err := w.cfg.Layer.ApplyRemote(path, kind, ev, w.cfg.Params)
	if err != nil {
		if gone(err) {
			return nil
		}
		return fmt.Errorf("remote change of /%s: %w", path, err)
	}
	if len(res.Actions) > 0 {
		w.logf(slog.LevelInfo, "remote change of /%s: %s", path, describe(ev, res.Actions))
		w.changed(path)
	}
	return nil
}

func (w *Watcher) changed(path string) {
	if w.cfg.OnChange != nil {
		w.cfg.OnChange(path)
	}
}

// pendingKeys is the set of keys a queued operation acts on (guard 2).
func (w *Watcher) pendingKeys() (map[string]bool, error) {
	ops, err := w.cfg.Layer.Pending()
	if err != nil {
		return nil, err
	}
	busy := make(map[string]bool, len(ops))
	for _, op := range ops {
		busy[op.Key] = true
		if op.DstKey != "" {
			busy[op.DstKey] = true
		}
	}
	return busy, nil
}

func (w *Watcher) keyOf(k local.Kind, path string) string {
	if k == local.KindDir {
		return keymap.DirKey(w.cfg.Prefix, path)
	}
	return keymap.FileKey(w.cfg.Prefix, path)
}

// gone: the path or its directory went away locally meanwhile; nothing to do for it.
func gone(err error) bool {
	return errors.Is(err, local.ErrNotFound) || errors.Is(err, local.ErrNotDir)
}

func describe(ev syncrule.Event, acts []syncrule.Action) string {
	var b strings.Builder
	switch e := ev.(type) {
	case syncrule.RemoteChanged:
		fmt.Fprintf(&b, "object is now %s (%d bytes)", e.Version.ETag, e.Size)
	case syncrule.RemoteDeleted:
		b.WriteString("object deleted")
	}
	for _, a := range acts {
		switch a.(type) {
		case syncrule.MoveToLostFound:
			b.WriteString("; conflict: the local version moved to lost+found")
		case syncrule.ImportRemote:
			b.WriteString("; imported")
		}
	}
	return b.String()
}

// logf logs one line at level, the message built as by fmt.Sprintf.
func (w *Watcher) logf(level slog.Level, format string, args ...any) {
	w.cfg.Log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}
