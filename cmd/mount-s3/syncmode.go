package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/read"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/engine"
	"github.com/mount-s3/mount-s3/impl/sync/importer"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/syncfs"
	"github.com/mount-s3/mount-s3/spec/posixmeta"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// defaultBucketWarningLimit is Y11's limit: more objects than this under the mounted prefix
// make sync mode warn, and refuse to start unless --accept-bucket-warning.
const defaultBucketWarningLimit = 125_000_000

// bucketCheckEvery is how often the imported record count is compared with the limit.
const bucketCheckEvery = 30 * time.Second

// unmountFlushTimeout bounds the write-back at unmount. What is not written back by then is
// safe in the sync dir and is written back by the next mount of it (Y4).
const unmountFlushTimeout = 60 * time.Second

// syncCore is sync mode's stack: the local layer in --sync-dir, the importer, the write-back
// engine and the file system over them.
type syncCore struct {
	fs       *syncfs.FS
	layer    *local.Layer
	importer *importer.Importer
	engine   *engine.Engine
	stop     context.CancelFunc
	done     chan error
	watching func() // stops the remote-change watcher (C2)
	expiring sync.WaitGroup

	bucket, prefix, syncDir string
	opts                    *options
	log                     *slog.Logger
}

func newSyncCore(o *options, store s3.Store, rc read.Config, socket string, logger *slog.Logger) (*syncCore, error) {
	layer, err := openSyncDir(o, logger)
	if err != nil {
		return nil, fmt.Errorf("--sync-dir %s: %w", o.syncDir, err)
	}
	if err := checkBucketSize(o, layer, logger); err != nil {
		layer.Close()
		return nil, err
	}
	params := syncrule.Params{WriteBackDelay: o.writeBackDelay, ExpireAfter: o.expireAfter, ImportThreshold: o.importThreshold}
	im := importer.New(importer.Config{Layer: layer, Store: store, Prefix: o.prefix, Threshold: o.importThreshold, Log: logger})
	if err := im.Resume(); err != nil {
		logger.Warn("resuming the import of object attributes", "error", err.Error())
	}
	conditions := true // a read-only mount writes nothing, and must not write the probe
	if !o.readOnly {
		conditions = conditionalWrites(context.Background(), store, o.prefix, logger)
	}
	eng, err := engine.New(engine.Config{Layer: layer, Store: store, Params: params, Clock: clock.Real{}, Log: logger,
		PartSize: o.uploadPartSize(), Attrs: objectAttrs, ConditionsUnsupported: !conditions, InferContentType: o.inferContentType})
	if err != nil {
		im.Close()
		layer.Close()
		return nil, err
	}
	c := &syncCore{layer: layer, importer: im, engine: eng, done: make(chan error, 1), log: logger,
		bucket: o.bucket, prefix: o.prefix, syncDir: o.syncDir, opts: o}
	core, err := syncfs.New(syncfs.Config{Layer: layer, Importer: im, WriteBack: eng, Prefix: o.prefix, Read: rc, Logger: logger,
		ControlSocket: socket})
	if err != nil {
		im.Close()
		layer.Close()
		return nil, err
	}
	if c.watching, err = startWatcher(context.Background(), o, layer, store, core.RemoteChanged, logger); err != nil {
		im.Close()
		layer.Close()
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	c.fs, c.stop = core, stop
	go func() { c.done <- eng.Run(ctx) }()
	c.expiring.Add(3)
	go c.expireLoop(ctx, params)
	go c.summaryLoop(ctx)
	go c.sizeLoop(ctx, o)
	return c, nil
}

// handOverWait bounds how long a new mount waits for an earlier one of the same sync dir that
// was unmounted and is still writing back (it takes at most unmountFlushTimeout).
const handOverWait = unmountFlushTimeout + 30*time.Second

// openSyncDir opens the sync dir. If another process holds it but no longer serves a mount (it
// was unmounted and is writing back what remains), it waits for that process to finish and
// says so, instead of failing: the user already did what the refusal would ask. A holder that
// still serves a mount is refused at once.
func openSyncDir(o *options, logger *slog.Logger) (*local.Layer, error) {
	open := func() (*local.Layer, error) {
		return local.Open(o.syncDir, local.Options{Bucket: o.bucket, Prefix: o.prefix, UID: o.uid, GID: o.gid,
			DirMode: uint32(o.dirMode.Perm()), FileMode: uint32(o.fileMode.Perm())})
	}
	deadline := time.Now().Add(handOverWait)
	said := false
	for {
		layer, err := open()
		if err == nil || !errors.Is(err, local.ErrLocked) || time.Now().After(deadline) {
			return layer, err
		}
		pid := lockHolder(o.syncDir)
		if pid <= 0 || servesFUSE(pid) {
			return nil, err
		}
		if !said {
			msg := fmt.Sprintf("waiting for process %d, an earlier mount of this sync dir that was unmounted and is still writing back", pid)
			logger.Info(msg, "sync_dir", o.syncDir)
			if !o.foreground {
				fmt.Fprintln(os.Stderr, "mount-s3: "+msg)
			}
			said = true
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lockHolder is the pid written in the sync dir's lock file, or 0.
func lockHolder(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, local.LockFile))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// servesFUSE reports whether process pid has a FUSE connection open, that is, still serves a
// mount; a process we may not inspect is taken to serve one.
func servesFUSE(pid int) bool {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && target == "/dev/fuse" {
			return true
		}
	}
	return false
}

// expireLoop drops unused clean data (Y10) as often as syncrule.ExpireSweepEvery says.
func (c *syncCore) expireLoop(ctx context.Context, p syncrule.Params) {
	defer c.expiring.Done()
	every := syncrule.ExpireSweepEvery(p)
	if every == 0 {
		return
	}
	clock.Every(ctx, clock.Real{}, every, func(now time.Time) {
		n, bytes, err := c.layer.ExpireUnused(now, p)
		if err != nil {
			c.log.Warn("expiring unused local data", "error", err.Error())
		} else if n > 0 {
			c.log.Info("expired unused local data; the bucket still has it", "files", n, "bytes", bytes)
		}
	})
}

// summaryEvery is how often the write-back's work is summed up in the log; the line per object
// is at debug level.
const summaryEvery = time.Minute

func (c *syncCore) summaryLoop(ctx context.Context) {
	defer c.expiring.Done()
	last := c.engine.Stats()
	clock.Every(ctx, clock.Real{}, summaryEvery, func(time.Time) { last = c.summarize(last) })
}

// summarize logs what the write-back did since last, if anything, and returns the new totals.
func (c *syncCore) summarize(last engine.Stats) engine.Stats {
	st := c.engine.Stats()
	up, del, ren, fail := st.Uploads-last.Uploads, st.Deletes-last.Deletes, st.Renames-last.Renames, st.Failures-last.Failures
	if up+del+ren+fail > 0 {
		c.log.Info("write-back", "uploaded", up, "deleted", del, "renamed", ren, "failed_attempts", fail, "pending_operations", st.PendingOps)
	}
	return st
}

// objectAttrs is the user metadata stored with an object: its POSIX attributes in s3fs-fuse's
// format (Y3).
func objectAttrs(info local.Info) map[string]string {
	return posixmeta.Encode(local.Meta(info))
}

// close writes back what it can within unmountFlushTimeout, then stops the engine and closes
// the layer. Nothing is lost if the flush does not finish: the sync dir keeps it.
func (c *syncCore) close() {
	st := c.engine.Stats()
	if st.PendingOps > 0 || st.DirtyFiles > 0 {
		c.log.Info("unmounted; writing back what remains before exiting", "pending_operations", st.PendingOps, "changed_files", st.DirtyFiles)
	}
	ctx, cancel := context.WithTimeout(context.Background(), unmountFlushTimeout)
	if err := c.engine.Flush(ctx); err != nil {
		c.log.Warn("write-back at unmount did not finish; the changes are kept in the sync dir and are written back by the next mount", "error", err.Error())
	} else {
		c.log.Info("write-back complete: the bucket has every change", "sync_dir", c.syncDir)
	}
	cancel()
	c.summarize(st)
	c.watching()
	c.stop()
	<-c.done
	c.expiring.Wait()
	c.importer.Close()
	if err := c.layer.Close(); err != nil {
		c.log.Error("closing the sync dir", "error", err.Error())
	}
}

// bucketWarning is Y11's message.
func bucketWarning(o *options, n int) string {
	return fmt.Sprintf("the mounted prefix holds more than %d objects (%d known so far in the sync dir); "+
		"sync mode keeps a record of each, and renaming a large directory copies every object in it", o.bucketWarningLimit, n)
}

// checkBucketSize is Y11's guard at start. The count is the sync dir's, built up lazily by
// imports: the bucket is never listed in full to start.
func checkBucketSize(o *options, layer *local.Layer, logger *slog.Logger) error {
	n, err := layer.Count()
	if err != nil || int64(n) <= o.bucketWarningLimit {
		return err
	}
	if !o.acceptBucketWarning {
		return fmt.Errorf("%s; mount again with --accept-bucket-warning to go on", bucketWarning(o, n))
	}
	logger.Warn(bucketWarning(o, n) + "; going on (--accept-bucket-warning)")
	return nil
}

// sizeLoop warns once when imports take the record count over the limit while mounted.
func (c *syncCore) sizeLoop(ctx context.Context, o *options) {
	defer c.expiring.Done()
	if n, _ := c.layer.Count(); int64(n) > o.bucketWarningLimit {
		return // already said at start
	}
	ctx, said := context.WithCancel(ctx)
	defer said()
	clock.Every(ctx, clock.Real{}, bucketCheckEvery, func(time.Time) {
		if n, err := c.layer.Count(); err == nil && int64(n) > o.bucketWarningLimit {
			c.log.Warn(bucketWarning(o, n) + "; the next mount of this sync dir needs --accept-bucket-warning")
			said()
		}
	})
}
