package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/read"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/status"
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
	log                     *slog.Logger
}

func newSyncCore(o *options, store s3.Store, rc read.Config, logger *slog.Logger) (*syncCore, error) {
	layer, err := local.Open(o.syncDir, local.Options{Bucket: o.bucket, Prefix: o.prefix, UID: o.uid, GID: o.gid,
		DirMode: uint32(o.dirMode.Perm()), FileMode: uint32(o.fileMode.Perm())})
	if err != nil {
		return nil, fmt.Errorf("--sync-dir %s: %w", o.syncDir, err)
	}
	if err := checkBucketSize(o, layer, logger); err != nil {
		layer.Close()
		return nil, err
	}
	stdlog := slog.NewLogLogger(logger.Handler(), slog.LevelInfo)
	params := syncrule.Params{WriteBackDelay: o.writeBackDelay, ExpireAfter: o.expireAfter, ImportThreshold: o.importThreshold}
	im := importer.New(importer.Config{Layer: layer, Store: store, Prefix: o.prefix, Threshold: o.importThreshold, Log: stdlog})
	if err := im.Resume(); err != nil {
		logger.Warn("resuming the import of object attributes", "error", err.Error())
	}
	conditions := true // a read-only mount writes nothing, and must not write the probe
	if !o.readOnly {
		conditions = conditionalWrites(context.Background(), store, o.prefix, logger)
	}
	eng, err := engine.New(engine.Config{Layer: layer, Store: store, Params: params, Clock: clock.Real{}, Log: stdlog,
		PartSize: o.uploadPartSize(), Attrs: objectAttrs, ConditionsUnsupported: !conditions, InferContentType: o.inferContentType})
	if err != nil {
		im.Close()
		layer.Close()
		return nil, err
	}
	c := &syncCore{layer: layer, importer: im, engine: eng, done: make(chan error, 1), log: logger,
		bucket: o.bucket, prefix: o.prefix, syncDir: o.syncDir}
	core, err := syncfs.New(syncfs.Config{Layer: layer, Importer: im, WriteBack: eng, Prefix: o.prefix, Read: rc, Logger: logger,
		Status: c.report})
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
	c.expiring.Add(2)
	go c.expireLoop(ctx, params)
	go c.sizeLoop(ctx, o)
	return c, nil
}

// expireLoop drops unused clean data (Y10) every tenth of --expire-after, at most hourly and
// at least every second.
func (c *syncCore) expireLoop(ctx context.Context, p syncrule.Params) {
	defer c.expiring.Done()
	if p.ExpireAfter < 0 {
		return
	}
	every := min(max(p.ExpireAfter/10, time.Second), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n, bytes, err := c.layer.ExpireUnused(now, p)
			if err != nil {
				c.log.Warn("expiring unused local data", "error", err.Error())
			} else if n > 0 {
				c.log.Info("expired unused local data; the bucket still has it", "files", n, "bytes", bytes)
			}
		}
	}
}

// objectAttrs is the user metadata stored with an object: its POSIX attributes in s3fs-fuse's
// format (Y3).
func objectAttrs(info local.Info) map[string]string {
	a := posixmeta.Attr{Mode: info.Attr.Mode, UID: info.Attr.UID, GID: info.Attr.GID, Mtime: info.Attr.Mtime,
		HasMode: true, HasOwner: true, HasMtime: !info.Attr.Mtime.IsZero(), Kind: posixmeta.File}
	switch info.Kind {
	case local.KindDir:
		a.Kind = posixmeta.Dir
	case local.KindSymlink:
		a.Kind = posixmeta.Symlink
	}
	return posixmeta.Encode(a)
}

// close writes back what it can within unmountFlushTimeout, then stops the engine and closes
// the layer. Nothing is lost if the flush does not finish: the sync dir keeps it.
func (c *syncCore) close() {
	ctx, cancel := context.WithTimeout(context.Background(), unmountFlushTimeout)
	if err := c.engine.Flush(ctx); err != nil {
		c.log.Warn("write-back at unmount did not finish; the changes are kept in the sync dir and are written back by the next mount", "error", err.Error())
	}
	cancel()
	c.watching()
	c.stop()
	<-c.done
	c.expiring.Wait()
	c.importer.Close()
	if err := c.layer.Close(); err != nil {
		c.log.Error("closing the sync dir", "error", err.Error())
	}
}

// report is the status of the mount (`mount-s3 status`): what the bucket is still owed and
// what lost+found holds.
func (c *syncCore) report() ([]byte, error) {
	st := c.engine.Stats()
	r := status.Report{Mode: "sync", Bucket: c.bucket, Prefix: c.prefix, SyncDir: c.syncDir,
		Uploads: st.Uploads, Failures: st.Failures, Conflicts: st.Conflicts, LastError: st.LastError}
	dirty, err := c.layer.Dirty()
	if err != nil {
		return nil, err
	}
	for _, d := range dirty {
		if d.State.LostFound {
			continue
		}
		r.Pending = append(r.Pending, status.Pending{Path: d.Path, Deleted: d.State.Deleted, DirtySince: d.State.DirtySince,
			Uploading: d.State.InFlight != syncrule.OpNone})
	}
	ops, err := c.layer.Pending()
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		if op.Kind == local.OpRename {
			r.Renames = append(r.Renames, status.Rename{From: op.Key, To: op.DstKey, Queued: op.Queued})
		}
	}
	lf := syncrule.LostFoundDir(c.layer.FSID())
	if files, err := c.layer.List(lf); err == nil {
		for _, f := range files {
			r.LostFound = append(r.LostFound, status.LostFound{Path: f.Path, OriginalPath: f.OriginalPath, Size: f.Size})
		}
	}
	return status.Encode(r)
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
	t := time.NewTicker(bucketCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := c.layer.Count(); err == nil && int64(n) > o.bucketWarningLimit {
				c.log.Warn(bucketWarning(o, n) + "; the next mount of this sync dir needs --accept-bucket-warning")
				return
			}
		}
	}
}
