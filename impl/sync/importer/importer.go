// Package importer owns the import half of sync mode (Y1-Y3): the only reads of the bucket
// that fill the local layer. EnsureDir lists a directory once (one paginated ListObjectsV2)
// and records its entries in the layer, then fetches in the background the data of small
// files and the metadata (Y3 attributes, symlinks) of the others; Fetch brings one file's data
// in on demand (Y2, and the read after expiry, Y10).
//
// It owns no durable state: the layer records what was imported (Imported, AttrPending,
// the data state of each file), so everything here may be lost in a crash and redone. It does
// not act on remote changes to names the layer already has (C2-C6 are the engine's). A
// directory's marker (Y8) is seen when the directory itself is listed (its own key is in its
// listing): its version becomes the directory's base, and its attributes are read with one
// HEAD in the background. A directory seen only as a common prefix of its parent keeps the
// defaults until it is listed: a HEAD per common prefix would double the cost of listing a
// directory of directories.
//
// Versions: a syncrule.Version's ETag is the ETag exactly as the Store returns it (quoted),
// in listings, HEAD and GET alike, so that it can be given back as If-Match unchanged.
package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/mount-s3/mount-s3/impl/listdir"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/posixmeta"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// Config configures an Importer.
type Config struct {
	Layer  *local.Layer
	Store  s3.Store
	Prefix string // the mount prefix: "" or ending in "/" (K8)
	// Threshold: files smaller than this are fetched whole in the background when their
	// directory is imported (Y1, --import-threshold); 0 means the default, 128 KiB, and a
	// negative value fetches none.
	Threshold int64
	// Workers is how many background fetches (and attribute HEADs ahead of an `ls -l`) run at
	// once; default 64. Each waits a round trip: at S3's 20 ms, 1,000 fresh entries take
	// 1000/Workers round trips, so 16 left an `ls -l` at 1.5 s.
	Workers int
	// AttrWorkers is how many more run only the attribute HEADs ahead of an `ls -l`
	// (PrefetchAttrs), default 64: a listing's stats then do not wait behind the background
	// GETs of its small files, and 1,000 fresh entries take about 1000/(Workers+AttrWorkers)
	// round trips. At 20 ms that is up to 6,400 requests a second for the length of the
	// listing, near S3's 5,500 per prefix; a SlowDown beyond it is retried with backoff.
	AttrWorkers int
	Log         *slog.Logger // default: discard
}

// Importer imports directories and file data from the bucket into the layer. Its methods are
// safe for concurrent use.
type Importer struct {
	cfg    Config
	ctx    context.Context // cancelled by Close: ends background work
	cancel context.CancelFunc

	dirs    flight // EnsureDir, by directory path
	fetches flight // fetchNow, by file path
	attrs   flight // importAttrs, by path

	mu sync.Mutex
	// Three waits on mu, so that a job wakes only who may run it (128 workers woke for each):
	// work for the workers (a job queued), attrWork for the attribute-only workers (an
	// attribute read queued), cond for the committer and Wait (attributes to record, or
	// nothing pending any more).
	work, attrWork, cond *sync.Cond
	queue                []job              // GUARDED_BY(mu)
	attrQ                []local.RemoteAttr // GUARDED_BY(mu): read by lookups, for the committer
	// recent holds what attrQ held until the committer has recorded it, by path, so that a
	// lookup meanwhile answers what was read instead of reading it again.
	recent   map[string]local.RemoteAttr // GUARDED_BY(mu)
	attrJobs []string                    // GUARDED_BY(mu): PrefetchAttrs, run before queue
	pending  int                         // GUARDED_BY(mu): queued or running jobs
	closed   bool                        // GUARDED_BY(mu)
	workers  sync.WaitGroup
}

// job is the background work for one file from a listing: its data if small, else its
// metadata, for the version the listing showed.
type job struct {
	path string
	v    syncrule.Version
	size int64
	dir  bool // the attributes of a directory's marker
}

// New starts an Importer's background workers. It does no I/O.
func New(cfg Config) *Importer {
	if cfg.Threshold == 0 {
		cfg.Threshold = syncrule.DefaultImportThreshold
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.AttrWorkers <= 0 {
		cfg.AttrWorkers = 64
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	im := &Importer{cfg: cfg, ctx: ctx, cancel: cancel, recent: map[string]local.RemoteAttr{}}
	im.cond, im.work, im.attrWork = sync.NewCond(&im.mu), sync.NewCond(&im.mu), sync.NewCond(&im.mu)
	im.workers.Add(cfg.Workers + cfg.AttrWorkers + 1)
	for i := 0; i < cfg.Workers+cfg.AttrWorkers; i++ {
		go im.worker(i >= cfg.Workers)
	}
	go im.committer()
	return im
}

// EnsureDir imports directory dir ("" is the root) if it is not imported yet (Y1): one
// delimited listing of its key prefix, every page, recorded in the layer in one transaction.
// It returns once the entries are recorded; data and attributes follow in the background.
// Concurrent calls for one directory share one listing.
func (im *Importer) EnsureDir(ctx context.Context, dir string) error {
	done, err := im.cfg.Layer.Imported(dir)
	if err != nil || done {
		return err
	}
	return im.dirs.do(ctx, dir, func(ctx context.Context) error {
		// Checked again inside the flight: a call that started after another's finished
		// must not list again.
		if done, err := im.cfg.Layer.Imported(dir); err != nil || done {
			return err
		}
		return im.importDir(ctx, dir)
	})
}

// DirListing is one directory's delimited listing, read as every part of the product reads
// one (streaming mode's impl/streamfs listDir too): keymap decides what is hidden (K3), that a
// directory shadows a file of its name (K4), and that the directory's own marker is not an
// entry (K2).
type DirListing struct {
	Entries []keymap.Entry
	Objects map[string]s3.ObjectInfo // by name (hidden ones and the marker "" too)
	Marker  syncrule.Version         // the directory's own marker "dir/", if the bucket has one
}

// ListDir reads directory dir (a path, "" for the mount's root) under prefix, every page
// (listdir.Read). The importer reads it once per directory (Y1), the watcher at every poll (C2).
func ListDir(ctx context.Context, store s3.Store, prefix, dir string) (DirListing, error) {
	l, err := listdir.Read(ctx, store, prefix, dir, nil)
	if err != nil {
		return DirListing{}, fmt.Errorf("list %q: %w", keymap.DirKey(prefix, dir), err)
	}
	out := DirListing{Entries: l.Names.Entries(), Objects: l.Objects}
	if o, ok := l.Marker(dir); ok {
		out.Marker = VersionOf(o)
	}
	return out, nil
}

func (im *Importer) importDir(ctx context.Context, dir string) error {
	l, err := ListDir(ctx, im.cfg.Store, im.cfg.Prefix, dir)
	if err != nil {
		return fmt.Errorf("import /%s: %w", dir, err)
	}
	marker := l.Marker
	var entries []local.Remote
	var jobs []job
	for _, e := range l.Entries {
		if e.Kind == keymap.Dir {
			entries = append(entries, local.Remote{Name: e.Name, Kind: local.KindDir})
			continue
		}
		o := l.Objects[e.Name]
		v := VersionOf(o)
		entries = append(entries, local.Remote{Name: e.Name, Kind: local.KindFile, Version: v, Size: o.Size, Mtime: o.LastModified})
		jobs = append(jobs, job{path: keymap.Join(dir, e.Name), v: v, size: o.Size})
	}
	if err := im.cfg.Layer.ImportDir(dir, marker, entries); err != nil {
		return err
	}
	if !marker.IsZero() {
		jobs = append(jobs, job{path: dir, v: marker, dir: true})
	}
	im.enqueue(jobs)
	return nil
}

// Resume queues the background work a restart interrupted: the files whose attributes are
// still the defaults of their import (local.Layer.AttrPending).
func (im *Importer) Resume() error {
	infos, err := im.cfg.Layer.AttrPending()
	if err != nil {
		return err
	}
	jobs := make([]job, 0, len(infos))
	for _, in := range infos {
		jobs = append(jobs, job{path: in.Path, v: in.State.Base, size: in.State.Size, dir: in.Kind == local.KindDir})
	}
	im.enqueue(jobs)
	return nil
}

// Fetch brings the data of the file at path into the layer now (Y2): the whole object, read
// with If-Match on the file's base, so an object that changed since it was imported is an
// error (wrapping s3.ErrPreconditionFailed) and never mixed into the file. It is a no-op if
// the data is local. Concurrent calls for one path share one GET.
func (im *Importer) Fetch(ctx context.Context, path string) error {
	return im.fetches.do(ctx, path, func(ctx context.Context) error {
		info, err := im.cfg.Layer.Stat(path)
		if err != nil {
			return err
		}
		switch {
		case info.Kind != local.KindFile:
			return nil // a symlink's target is in its record; a directory has no data
		case info.State.Data == syncrule.LocalData:
			return nil
		case info.State.Base.IsZero():
			return fmt.Errorf("fetch /%s: the bucket has no object for it", path)
		}
		err = im.get(ctx, path, info.State.Base, info.State.Size)
		if errors.Is(err, s3.ErrNotFound) || errors.Is(err, s3.ErrPreconditionFailed) {
			// A rename's copy may have moved the object between RemoteSource and the GET;
			// the layer then names the new key and version. One more try from there.
			if again, serr := im.cfg.Layer.Stat(path); serr == nil && again.State.Data != syncrule.LocalData && !again.State.Base.IsZero() {
				err = im.get(ctx, path, again.State.Base, again.State.Size)
			}
		}
		if errors.Is(err, s3.ErrNotFound) || errors.Is(err, s3.ErrPreconditionFailed) {
			// Another writer changed or deleted the object since it was imported, and no
			// poll has told the layer yet. The bucket wins (C2): import what it holds now,
			// then fetch that.
			return im.refetch(ctx, path)
		}
		return err
	})
}

// ImportAttrs returns the entry at path with the attributes of its object's metadata (Y3),
// reading them now if its import left the defaults in place and the background import has not
// read them yet: a lookup must not hand the kernel defaults, least of all a symlink as a
// regular file, a type the kernel then keeps for the inode. A file or directory is answered
// as soon as its HEAD is back, and the layer records the attributes right after, without the
// lookup waiting for that commit; a symlink's target is fetched and recorded first, since a
// readlink must find it.
func (im *Importer) ImportAttrs(ctx context.Context, path string) (local.Info, error) {
	info, err := im.cfg.Layer.Stat(path)
	if err != nil || !info.AttrPending || info.State.Dirty() || info.State.Base.IsZero() {
		return info, err
	}
	if got, ok := im.readAhead(info); ok {
		return got, nil
	}
	// One HEAD per path at a time: a lookup arriving while PrefetchAttrs reads the same
	// entry waits for it and takes its result.
	err = im.attrs.do(ctx, path, func(ctx context.Context) error {
		var err error
		info, err = im.importAttrs(ctx, info)
		return err
	})
	if err != nil {
		return info, err
	}
	if got, ok := im.readAhead(info); ok {
		return got, nil
	}
	return im.cfg.Layer.Stat(path)
}

// readAhead returns info with the attributes a HEAD read for its version and the committer
// has not recorded yet, if there are such.
// LOCKS_EXCLUDED(im.mu)
func (im *Importer) readAhead(info local.Info) (local.Info, bool) {
	im.mu.Lock()
	u, ok := im.recent[info.Path]
	im.mu.Unlock()
	// A listed file whose metadata says FIFO, device or socket becomes one when recorded.
	if !ok || !u.Version.Same(info.State.Base) || u.Kind != info.Kind && !(info.Kind == local.KindFile && u.Kind.Special()) {
		return info, false
	}
	info.Attr, info.AttrPending, info.Kind = u.Attr, false, u.Kind
	return info, true
}

// PrefetchAttrs queues the reading of path's attributes ahead of the background import, for
// an entry a directory listing has just shown the kernel: an `ls -l` then finds them read
// when it stats the entry, instead of waiting for one HEAD after another.
// LOCKS_EXCLUDED(im.mu)
func (im *Importer) PrefetchAttrs(path string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return
	}
	im.attrJobs = append(im.attrJobs, path)
	im.pending++
	im.attrWork.Signal()
	im.work.Signal() // whichever is free first takes it; the other waits again
}

// importAttrs reads info's attributes (a symlink's target too) and returns info as they make
// it, leaving the recording of a file's or directory's attributes to the committer.
func (im *Importer) importAttrs(ctx context.Context, info local.Info) (local.Info, error) {
	if info.Kind != local.KindFile && info.Kind != local.KindDir {
		return info, nil
	}
	meta, done, err := im.headAttrs(ctx, info.Path, info.Kind, info.State.Base)
	if err != nil {
		return info, err
	}
	if done {
		return im.cfg.Layer.Stat(info.Path)
	}
	a, kind := info.Attr.Overlay(meta), info.Kind
	if kind == local.KindFile {
		kind = local.KindOfMeta(meta.Kind) // a FIFO, device or socket is an empty object
	}
	if !im.recordLater(local.RemoteAttr{Path: info.Path, Version: info.State.Base, Attr: a, Kind: kind}) {
		return info, nil
	}
	info.Attr, info.AttrPending, info.Kind = a, false, kind
	return info, nil
}

// recordLater queues u for the committer, which records queued attributes in one
// transaction each time it comes round, unless the importer is closed.
// LOCKS_EXCLUDED(im.mu)
func (im *Importer) recordLater(u local.RemoteAttr) bool {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return false
	}
	im.recent[u.Path] = u
	im.attrQ = append(im.attrQ, u)
	im.cond.Broadcast()
	return true
}

// committer records the attributes lookups read (recordLater), a batch per transaction.
// What is queued at Close is dropped: the records stay AttrPending, which Resume redoes.
// LOCKS_EXCLUDED(im.mu)
func (im *Importer) committer() {
	defer im.workers.Done()
	for {
		im.mu.Lock()
		for len(im.attrQ) == 0 && !im.closed {
			im.cond.Wait()
		}
		if im.closed {
			im.mu.Unlock()
			return
		}
		batch := im.attrQ
		im.attrQ = nil
		im.mu.Unlock()
		if err := im.cfg.Layer.SetRemoteAttrs(batch); err != nil {
			im.logf(slog.LevelInfo, "import: recording the attributes of %d entries lookups read: %v (the import reads them again)", len(batch), err)
		}
		im.mu.Lock()
		for _, u := range batch {
			if r, ok := im.recent[u.Path]; ok && r.Version.Same(u.Version) {
				delete(im.recent, u.Path)
			}
		}
		im.mu.Unlock()
	}
}

// get reads version v of path's object (If-Match) and records it: a symlink's target and
// attributes, or a file's data and then its attributes.
// refetch reads what the bucket holds at path's key now, applies it to the layer as a remote
// change, and fetches the new version's data if the file is still there.
func (im *Importer) refetch(ctx context.Context, path string) error {
	src, err := im.cfg.Layer.RemoteSource(path)
	if err != nil {
		return err
	}
	key := src.Key
	params := syncrule.Params{ImportThreshold: im.cfg.Threshold}
	obj, err := im.cfg.Store.Head(ctx, key)
	switch {
	case errors.Is(err, s3.ErrNotFound):
		if _, err := im.cfg.Layer.ApplyRemote(path, local.KindFile, syncrule.RemoteDeleted{}, params); err != nil {
			return fmt.Errorf("fetch /%s: the object was deleted in the bucket: %w", path, err)
		}
		return fmt.Errorf("fetch /%s: the object was deleted in the bucket: %w", path, s3.ErrNotFound)
	case err != nil:
		return fmt.Errorf("fetch /%s: %w", path, err)
	}
	if _, err := im.cfg.Layer.ApplyRemote(path, local.KindFile, syncrule.RemoteChanged{Version: VersionOf(obj), Size: obj.Size}, params); err != nil {
		return fmt.Errorf("fetch /%s: importing the bucket's new version: %w", path, err)
	}
	info, err := im.cfg.Layer.Stat(path)
	if err != nil || info.Kind != local.KindFile || info.State.Data == syncrule.LocalData || info.State.Base.IsZero() {
		return err
	}
	return im.get(ctx, path, info.State.Base, info.State.Size)
}

func (im *Importer) get(ctx context.Context, path string, v syncrule.Version, size int64) error {
	// A file renamed before its rename's copy ran is still at the source key (Y9).
	src, err := im.cfg.Layer.RemoteSource(path)
	if err != nil {
		return fmt.Errorf("fetch /%s: %w", path, err)
	}
	if !src.Version.Same(v) {
		return fmt.Errorf("fetch /%s: the file changed since it was listed (%s, now %s)", path, v.ETag, src.Version.ETag)
	}
	f, err := FetchVersion(ctx, im.cfg.Store, im.cfg.Layer, path, src.Key, v, size)
	if err != nil {
		return err
	}
	return im.setAttr(path, f.Version, f.Meta, f.Kind, f.Target)
}

// Fetch is what FetchVersion recorded of one version: the version as the GET answered it,
// the attributes its metadata carries, and the kind (with a symlink's target) it is.
type Fetch struct {
	Version syncrule.Version
	Meta    posixmeta.Attr
	Kind    local.Kind
	Target  string
}

// FetchVersion is the one import of a remote version's content, for the importer and for the
// engine after a conflict: a GET of version v (If-Match) of key, size bytes, recorded at path
// by what the object is: a symlink (s3fs stores its target as the body), a special file
// (nothing to store), or a regular file's data (Layer.PutData). The caller records the
// attributes (Layer.SetRemoteAttr), over what it knows of the record.
func FetchVersion(ctx context.Context, store s3.Store, layer *local.Layer, path, key string, v syncrule.Version, size int64) (Fetch, error) {
	body, info, err := store.Get(ctx, key, 0, -1, v.ETag)
	if err != nil {
		if errors.Is(err, s3.ErrPreconditionFailed) {
			return Fetch{}, fmt.Errorf("fetch /%s: the object changed since it was imported (%s): %w", path, v.ETag, err)
		}
		return Fetch{}, fmt.Errorf("fetch /%s: %w", path, err)
	}
	defer body.Close()
	f := Fetch{Version: Fetched(v, info), Meta: posixmeta.Decode(info.Metadata), Kind: local.KindFile}
	switch k := local.KindOfMeta(f.Meta.Kind); {
	case f.Meta.Kind == posixmeta.Symlink:
		target, err := io.ReadAll(io.LimitReader(body, size+1))
		if err != nil {
			return Fetch{}, fmt.Errorf("fetch /%s: %w", path, err)
		}
		f.Kind, f.Target = local.KindSymlink, string(target)
	case k.Special():
		f.Kind = k
	default:
		if err := layer.PutData(path, f.Version, body); err != nil {
			return Fetch{}, fmt.Errorf("fetch /%s: %w", path, err)
		}
	}
	return f, nil
}

// head reads the metadata of version v of the file or directory at path (a file too large to
// fetch in the background, a directory's marker) and records it.
func (im *Importer) head(ctx context.Context, path string, kind local.Kind, v syncrule.Version) error {
	meta, done, err := im.headAttrs(ctx, path, kind, v)
	if err != nil || done {
		return err
	}
	if kind == local.KindFile {
		kind = local.KindOfMeta(meta.Kind)
	}
	return im.setAttr(path, v, meta, kind, "")
}

// headAttrs reads the metadata of version v of the object behind path: its key, or its marker
// for a directory. done: nothing is left to record, because the object is no longer v (a
// remote change, not ours to import) or it is a symlink, recorded here with its target (the
// body: a GET, as for small files).
func (im *Importer) headAttrs(ctx context.Context, path string, kind local.Kind, v syncrule.Version) (posixmeta.Attr, bool, error) {
	key := keymap.FileKey(im.cfg.Prefix, path)
	if kind == local.KindDir {
		key = keymap.DirKey(im.cfg.Prefix, path)
	}
	o, err := im.cfg.Store.Head(ctx, key)
	if err != nil {
		return posixmeta.Attr{}, false, fmt.Errorf("head %s: %w", key, err)
	}
	if !VersionOf(o).Same(v) {
		return posixmeta.Attr{}, true, nil
	}
	meta := posixmeta.Decode(o.Metadata)
	if kind == local.KindFile && meta.Kind == posixmeta.Symlink {
		return meta, true, im.get(ctx, path, v, o.Size)
	}
	return meta, false, nil
}

// setAttr overlays the attributes the metadata has on the record's current ones, which are
// the S9 defaults and the listing's Last-Modified the import gave it.
func (im *Importer) setAttr(path string, v syncrule.Version, m posixmeta.Attr, kind local.Kind, target string) error {
	info, err := im.cfg.Layer.Stat(path)
	if err != nil {
		if errors.Is(err, local.ErrNotFound) {
			return nil
		}
		return err
	}
	return im.cfg.Layer.SetRemoteAttr(path, v, info.Attr.Overlay(m), kind, target)
}

// Fetched is version v as a GET with If-Match on it answered: the ETag asked for, in the form
// comparisons use, and the version id the answer carries.
func Fetched(v syncrule.Version, o s3.ObjectInfo) syncrule.Version {
	return syncrule.Version{ETag: v.ETag, VersionID: o.VersionID}
}

// VersionOf is the version an object is remembered by (C1), with its ETag in the one form
// every comparison uses. The importer, the engine and the watcher all take versions from it.
func VersionOf(o s3.ObjectInfo) syncrule.Version {
	return syncrule.Version{ETag: s3.NormalizeETag(o.ETag), VersionID: o.VersionID}
}

// Pending is how many background jobs (a file's data or attributes) are queued or running:
// the import's progress, for the mount's metrics.
// LOCKS_EXCLUDED(im.mu)
func (im *Importer) Pending() int {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.pending
}

// LOCKS_EXCLUDED(im.mu)
func (im *Importer) enqueue(jobs []job) {
	if len(jobs) == 0 {
		return
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return
	}
	im.queue = append(im.queue, jobs...)
	im.pending += len(jobs)
	im.work.Broadcast()
}

// worker runs queued jobs, the attribute reads of PrefetchAttrs first; an attrOnly worker
// runs nothing else.
// LOCKS_EXCLUDED(im.mu)
func (im *Importer) worker(attrOnly bool) {
	defer im.workers.Done()
	for {
		im.mu.Lock()
		for (attrOnly || len(im.queue) == 0) && len(im.attrJobs) == 0 && !im.closed {
			if attrOnly {
				im.attrWork.Wait()
			} else {
				im.work.Wait()
			}
		}
		if im.closed {
			im.mu.Unlock()
			return
		}
		var err error
		if len(im.attrJobs) > 0 {
			path := im.attrJobs[0]
			im.attrJobs = im.attrJobs[1:]
			im.mu.Unlock()
			_, err = im.ImportAttrs(im.ctx, path)
		} else {
			j := im.queue[0]
			im.queue[0] = job{}
			im.queue = im.queue[1:]
			im.mu.Unlock()
			err = im.run(j)
		}
		if err != nil && im.ctx.Err() == nil {
			im.logf(slog.LevelInfo, "import: %v", err)
		}

		im.mu.Lock()
		if im.pending--; im.pending == 0 {
			im.cond.Broadcast() // Wait
		}
		im.mu.Unlock()
	}
}

// run does one job, unless the layer shows it is no longer needed: the file changed locally
// or remotely since the listing, or its data and attributes are in already.
func (im *Importer) run(j job) error {
	info, err := im.cfg.Layer.Stat(j.path)
	if errors.Is(err, local.ErrNotFound) || errors.Is(err, local.ErrNotDir) {
		return nil
	}
	if err != nil {
		return err
	}
	s := info.State
	if j.dir {
		if info.Kind != local.KindDir || s.Dirty() || !s.Base.Same(j.v) || !info.AttrPending {
			return nil
		}
		return im.head(im.ctx, j.path, local.KindDir, s.Base)
	}
	if info.Kind != local.KindFile || s.Dirty() || !s.Base.Same(j.v) {
		return nil
	}
	small := j.size < im.cfg.Threshold
	if small && s.Data != syncrule.LocalData {
		// Through the same flight as Fetch, so a program opening the file meanwhile waits
		// for this GET instead of sending its own.
		err := im.fetches.do(im.ctx, j.path, func(ctx context.Context) error {
			info, err := im.cfg.Layer.Stat(j.path)
			if err != nil || info.Kind != local.KindFile || info.State.Data == syncrule.LocalData || !info.State.Base.Same(j.v) {
				return nil
			}
			return im.get(ctx, j.path, info.State.Base, info.State.Size)
		})
		if errors.Is(err, local.ErrInvalid) {
			return nil // the base moved under the GET: PutData refused the stale bytes
		}
		return err
	}
	if !info.AttrPending {
		return nil
	}
	return im.head(im.ctx, j.path, local.KindFile, s.Base)
}

// Wait blocks until the background work queued so far is done (or dropped by Close).
// LOCKS_EXCLUDED(im.mu)
func (im *Importer) Wait() {
	im.mu.Lock()
	defer im.mu.Unlock()
	for im.pending > 0 && !im.closed {
		im.cond.Wait()
	}
}

// Close stops the background work and waits for the workers to exit. Work still queued is
// dropped: data is fetched on demand, and Resume redoes the attributes after a restart.
// LOCKS_EXCLUDED(im.mu)
func (im *Importer) Close() {
	im.mu.Lock()
	if im.closed {
		im.mu.Unlock()
		return
	}
	im.closed = true
	im.queue, im.attrJobs, im.pending = nil, nil, 0
	im.cond.Broadcast()
	im.work.Broadcast()
	im.attrWork.Broadcast()
	im.mu.Unlock()
	im.cancel()
	im.workers.Wait()
}

// flight runs one call per key at a time; callers arriving meanwhile share its result
// (a singleflight).
type flight struct {
	mu    sync.Mutex
	calls map[string]*call // GUARDED_BY(mu)
}

type call struct {
	done chan struct{}
	err  error
}

// do runs fn for key unless a call for key is running, in which case it waits for that one.
// The call runs under the context of the caller that started it; a waiter whose own context
// is live does not inherit that caller's cancellation, it tries again.
func (f *flight) do(ctx context.Context, key string, fn func(context.Context) error) error {
	for {
		f.mu.Lock()
		if f.calls == nil {
			f.calls = map[string]*call{}
		}
		if c := f.calls[key]; c != nil {
			f.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if (errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) && ctx.Err() == nil {
				continue
			}
			return c.err
		}
		c := &call{done: make(chan struct{})}
		f.calls[key] = c
		f.mu.Unlock()

		c.err = fn(ctx)
		f.mu.Lock()
		delete(f.calls, key)
		f.mu.Unlock()
		close(c.done)
		return c.err
	}
}

// logf logs one line at level, the message built as by fmt.Sprintf.
func (im *Importer) logf(level slog.Level, format string, args ...any) {
	im.cfg.Log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}
