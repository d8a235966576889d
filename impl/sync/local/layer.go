package local

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Options configure a Layer.
type Options struct {
	// Bucket and Prefix name what the sync dir mirrors. They are recorded when the dir is
	// created and checked on every later Open: a sync dir holds one bucket and prefix.
	Bucket string
	Prefix string
	// Clock is the only source of time (mtimes, dirty-since, last use). Defaults to the wall
	// clock.
	Clock clock.Clock
	// UID, GID and DirMode are the attributes of the root directory when the dir is created,
	// and with FileMode the attributes ImportListing gives objects that carry none (S9, Y3).
	UID, GID uint32
	DirMode  uint32 // default 0755
	FileMode uint32 // default 0644
}

// File names inside DIR.
const (
	DBFile   = "meta.db"
	DataDir  = "data"
	snapDir  = "snap"
	LockFile = "lock" // holds the pid of the process that has the sync dir open
)

// Layer is an open sync dir. Its methods are safe for concurrent use.
type Layer struct {
	dir   string
	opts  Options
	db    *bolt.DB
	lock  *os.File
	fsid  string
	clock clock.Clock

	// mu orders namespace changes and guards files. Lock order: mu, then an openFile's mu,
	// then bbolt's writer lock (taken inside Update).
	mu    sync.Mutex
	files map[uint64]*openFile // GUARDED_BY(mu)
	// filesMu also guards files, for Stat, which reads it without mu: a reader of attributes
	// must not wait for mu, which is held across commits. Writers of files hold both.
	filesMu sync.RWMutex
	closed  atomic.Bool    // set under mu; read without it by views
	commits committer      // shared commits for the changes programs wait on (commit.go)
	entries entrySync      // entries of new data files not yet durable (commit.go)
	lastID  atomic.Uint64  // the greatest data id handed out, committed or not (newDataID)
	pending pendingCreates // creates answered before their commit (pending.go)

	observed observations // names removed while the watcher looked (observe.go)
	touches  touches      // reads not recorded yet (TouchLater)
}

// crashHook is called at named points of multi-step operations; the crash tests set it to
// kill the process there.
var crashHook = func(point string) {}

// Open opens the sync dir at dir, creating it if it does not exist. Opening an existing dir
// is also crash recovery (SYNC.md invariant 7): the dirty records and the queue are whatever
// the last committed transactions left, and Open only removes what no committed record
// refers to (snapshots, orphaned data files).
func Open(dir string, opts Options) (*Layer, error) {
	if err := keymap.ValidatePrefix(opts.Prefix); err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.DirMode == 0 {
		opts.DirMode = 0o755
	}
	if opts.FileMode == 0 {
		opts.FileMode = 0o644
	}
	for _, d := range []string{dir, filepath.Join(dir, DataDir), filepath.Join(dir, snapDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("sync dir %s: %w", dir, err)
		}
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Layer{dir: dir, opts: opts, lock: lock, clock: opts.Clock, files: map[uint64]*openFile{}}
	if err := l.openDB(); err != nil {
		if l.db != nil {
			l.db.Close()
		}
		lock.Close()
		return nil, err
	}
	return l, nil
}

// lockDir takes an exclusive flock on DIR/lock. flock is per open file description, so a
// second Open in the same process is refused too, and the lock dies with the process.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sync dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by process %s; stop that mount first (each sync dir serves one mount)",
				ErrLocked, dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("sync dir %s: lock: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// corrupt builds the error Open returns for a store it cannot trust: what is wrong and how to
// recover without losing the local data files.
func (l *Layer) corrupt(cause error) error {
	return fmt.Errorf("%w: %s: %v.\nNothing in %s was changed. To recover without losing anything: stop "+
		"mount-s3, run `mount-s3 sync --recover %s` (it sets the sync dir aside as %s.broken-TIME, "+
		"keeping every data file, and lists in its %s the files whose changes had not reached the bucket), "+
		"mount again so the bucket is imported afresh, then copy back the files the list names",
		ErrCorrupt, filepath.Join(l.dir, DBFile), cause, l.dir, l.dir, l.dir, SalvageFile)
}

func (l *Layer) openDB() (err error) {
	dbPath := filepath.Join(l.dir, DBFile)
	if _, statErr := os.Stat(dbPath); errors.Is(statErr, os.ErrNotExist) {
		// A missing store next to data files means it was deleted: creating a fresh one would
		// orphan every dirty file, so refuse.
		if ents, _ := os.ReadDir(filepath.Join(l.dir, DataDir)); len(ents) > 0 {
			return l.corrupt(fmt.Errorf("the metadata database is missing but %d data files exist", len(ents)))
		}
	}
	// bbolt may panic on a damaged page instead of returning an error.
	defer func() {
		if r := recover(); r != nil {
			err = l.corrupt(fmt.Errorf("reading the database panicked: %v", r))
		}
	}()
	// A large initial mapping (address space, not memory) spares readers the remaps a growing
	// file forces on every commit that extends it: a remap waits for every open read.
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: time.Second, InitialMmapSize: 1 << 30})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return fmt.Errorf("%w: %s", ErrLocked, dbPath)
		}
		return l.corrupt(err)
	}
	l.db = db
	l.commits.db = db
	if err := db.Update(l.initTx); err != nil {
		if errors.Is(err, ErrCorrupt) {
			return l.corrupt(err)
		}
		return err
	}
	return l.recover()
}

// initTx creates the buckets and the fsid once, and checks them on every later open.
func (l *Layer) initTx(tx *bolt.Tx) error {
	meta := tx.Bucket(bMeta)
	if meta == nil {
		if tx.Bucket(bNodes) != nil {
			return fmt.Errorf("%w: the meta bucket is missing", ErrCorrupt)
		}
		return l.create(tx)
	}
	for _, b := range [][]byte{bNodes, bIDs, bQueue} {
		if tx.Bucket(b) == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrCorrupt, b)
		}
	}
	switch v := string(meta.Get(kFormat)); v {
	case formatVersion:
	case "2":
		// Format 2 kept the dirs index for link counts only; it now also decides lookups
		// (lookupDir), so it is made afresh from the records once.
		if err := rebuildDirsIndex(tx); err != nil {
			return err
		}
		if err := meta.Put(kFormat, []byte(formatVersion)); err != nil {
			return err
		}
	case "1":
		// Format 1 has no dirs index and one path per id. Its index is made afresh (a binary of
		// format 1 may have run on a sync dir since an earlier one was made), and the version
		// is raised, so that a format-1 binary, which would take a linked file's paths for one
		// path, refuses the sync dir instead.
		if err := rebuildDirsIndex(tx); err != nil {
			return err
		}
		if err := meta.Put(kFormat, []byte(formatVersion)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown format version %q (made by a newer mount-s3?)", ErrCorrupt, v)
	}
	if tx.Bucket(bDirs) == nil {
		return fmt.Errorf("%w: bucket %q is missing", ErrCorrupt, bDirs)
	}
	if !bytes.Equal(meta.Get(kBucket), []byte(l.opts.Bucket)) || !bytes.Equal(meta.Get(kPrefix), []byte(l.opts.Prefix)) {
		return fmt.Errorf("sync dir %s belongs to s3://%s/%s, not s3://%s/%s: use another sync dir",
			l.dir, meta.Get(kBucket), meta.Get(kPrefix), l.opts.Bucket, l.opts.Prefix)
	}
	l.fsid = string(meta.Get(kFSID))
	if l.fsid == "" {
		return fmt.Errorf("%w: no fsid", ErrCorrupt)
	}
	root, err := getRec(tx, "")
	if err != nil {
		return err
	}
	if root == nil || root.Kind != KindDir {
		return fmt.Errorf("%w: the root record is missing", ErrCorrupt)
	}
	return nil
}

func (l *Layer) create(tx *bolt.Tx) error {
	meta, err := tx.CreateBucket(bMeta)
	if err != nil {
		return err
	}
	for _, b := range [][]byte{bNodes, bIDs, bQueue, bDirs} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return err
	}
	l.fsid = hex.EncodeToString(raw[:])
	for k, v := range map[string]string{string(kFSID): l.fsid, string(kBucket): l.opts.Bucket,
		string(kPrefix): l.opts.Prefix, string(kFormat): formatVersion} {
		if err := meta.Put([]byte(k), []byte(v)); err != nil {
			return err
		}
	}
	// The root exists in the bucket as the prefix itself (K8): it is clean and never uploaded.
	root := &record{Kind: KindDir, Attr: Attr{Mode: l.opts.DirMode, UID: l.opts.UID, GID: l.opts.GID, Mtime: l.clock.Now()}}
	root.State.Exists = true
	return putRec(tx, "", root)
}

// FSID is the file-system id created with the sync dir (it names lost+found, C4).
func (l *Layer) FSID() string { return l.fsid }

// Dir is the sync dir.
func (l *Layer) Dir() string { return l.dir }

// Close releases the sync dir. Open handles must be closed first; their unsynced writes are
// treated as after a crash (the file stays dirty, invariant 1).
func (l *Layer) Close() error {
	l.pending.settle()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return nil
	}
	l.flushTouchesLocked()
	l.closed.Store(true)
	for id, f := range l.files {
		f.file.Close()
		l.filesMu.Lock()
		delete(l.files, id)
		l.filesMu.Unlock()
	}
	err := l.db.Close()
	l.lock.Close()
	return err
}

func (l *Layer) dataPath(id uint64) string {
	return filepath.Join(l.dir, DataDir, fmt.Sprintf("%016x", id))
}

// Count returns how many records the layer holds: every file, directory and symlink imported
// or made here, tombstones and lost+found included. It is the lazy count of Y11's guard: it
// grows as directories are imported and never needs a listing of the bucket.
func (l *Layer) Count() (int, error) {
	n := 0
	err := l.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(bNodes).Stats().KeyN
		return nil
	})
	return n, err
}
