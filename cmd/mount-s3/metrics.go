package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/mount-s3/mount-s3/impl/cache"
	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/metrics"
	"github.com/mount-s3/mount-s3/impl/read"
	"github.com/mount-s3/mount-s3/impl/streamfs"
	"github.com/mount-s3/mount-s3/mount"
)

// logMetricsEvery is how often --log-metrics writes its summary line.
const logMetricsEvery = 5 * time.Second

// newMetrics builds the mount's metrics from the flags, or nil when none asks for them.
func newMetrics(o *options, logger *slog.Logger) (*metrics.Metrics, error) {
	cfg := metrics.Config{OTLPEndpoint: o.otlpEndpoint, OTLPInterval: o.otlpExportInterval, MetricsAddr: o.metricsAddr,
		Logger: logger, Version: version}
	if o.logMetrics {
		cfg.LogEvery = logMetricsEvery
	}
	mode := "streaming"
	if o.syncDir != "" {
		mode = "sync"
	}
	cfg.Attributes = []attribute.KeyValue{attribute.String("s3.bucket", o.bucket), attribute.String("mount_s3.mode", mode)}
	m, err := metrics.New(cfg)
	if err != nil || m == nil {
		return nil, err
	}
	if m.Addr() != "" {
		logger.Info("serving metrics", "url", "http://"+m.Addr()+"/metrics")
	}
	return m, nil
}

// stopMetrics exports what is left and stops the exporters.
func stopMetrics(m *metrics.Metrics, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		logger.Warn("stopping metrics", "error", err.Error())
	}
}

func budgetMetrics(m *metrics.Metrics, b *memory.Budget) {
	m.Gauge("mount_s3.memory.budget.usage", "By", "Bytes of prefetched and uploading data held now", b.InUse)
	m.Gauge("mount_s3.memory.budget.limit", "By", "The budget for prefetched and uploading data (half of --memory-target)", b.Limit)
}

// readMetrics registers the prefetcher's: its readers and how far their windows reach.
func readMetrics(m *metrics.Metrics, st *read.Stats) {
	m.Gauge("mount_s3.prefetch.readers", "{reader}", "Objects open for reading, each with its own prefetch window", st.Readers.Load)
	m.Gauge("mount_s3.prefetch.window", "By", "Bytes the readers' prefetch windows reach beyond what was read, summed", st.Window.Load)
}

// uploadMetrics registers a streaming mount's uploads.
func uploadMetrics(m *metrics.Metrics, f *streamfs.FS) {
	m.Gauge("mount_s3.uploads.in_flight", "{upload}", "Files open for writing whose upload is not complete", func() int64 {
		n, _, _ := f.UploadStats()
		return n
	})
	m.Counter("mount_s3.uploads", "{object}", "Uploads completed (a file written and closed)", func() int64 {
		_, done, _ := f.UploadStats()
		return int64(done)
	})
	m.Counter("mount_s3.upload.failures", "{upload}", "Uploads that failed (the program saw an error at close)", func() int64 {
		_, _, failed := f.UploadStats()
		return int64(failed)
	})
}

// cacheMetrics registers a data cache's counters under name ("disk" or "shared").
func cacheMetrics(m *metrics.Metrics, name string, stats func() cache.Stats) {
	p := "mount_s3.cache." + name + "."
	m.Counter(p+"hits", "{block}", "Blocks served from the cache", func() int64 { return stats().Hits })
	m.Counter(p+"misses", "{block}", "Blocks fetched from the bucket", func() int64 { return stats().Misses })
	m.Counter(p+"evictions", "{block}", "Blocks evicted to stay under the size limit", func() int64 { return stats().Evictions })
	m.Counter(p+"corrupt", "{block}", "Blocks that failed verification and were dropped", func() int64 { return stats().Corrupt })
	m.Gauge(p+"usage", "By", "Bytes of cached blocks now", func() int64 { return stats().Bytes })
}

// observer is met as the mount's observer, or no observer at all when metrics are off (a nil
// *Metrics in the interface would cost a call per operation).
func observer(met *metrics.Metrics) mount.Observer {
	if met == nil {
		return nil
	}
	return met
}

// metrics registers sync mode's write-back queue, conflicts and lost+found.
func (c *syncCore) metrics(m *metrics.Metrics) {
	if m == nil {
		return
	}
	st := c.engine.Stats
	m.Gauge("mount_s3.sync.queue.depth", "{operation}", "Bucket operations queued and not finished (uploads, deletes, renames)", func() int64 { return int64(st().PendingOps) })
	m.Gauge("mount_s3.sync.dirty_files", "{file}", "Files with changes the bucket does not have yet, at the last scan", func() int64 { return int64(st().DirtyFiles) })
	m.Counter("mount_s3.sync.uploads", "{object}", "Objects written back", func() int64 { return int64(st().Uploads) })
	m.Counter("mount_s3.sync.deletes", "{object}", "Objects deleted in the bucket", func() int64 { return int64(st().Deletes) })
	m.Counter("mount_s3.sync.renames", "{object}", "Objects moved in the bucket (copy and delete)", func() int64 { return int64(st().Renames) })
	m.Counter("mount_s3.sync.failures", "{attempt}", "Write-back attempts that failed and will be retried", func() int64 { return int64(st().Failures) })
	m.Counter("mount_s3.sync.conflicts", "{conflict}", "Writes the bucket refused because it changed (the loser goes to lost+found)", func() int64 { return int64(st().Conflicts) })
	m.Gauge("mount_s3.sync.import.pending", "{job}", "Background imports (a file's data or attributes) queued or running", func() int64 { return int64(c.importer.Pending()) })
	snap := c.syncSnapshot()
	m.Gauge("mount_s3.sync.dirty.size", "By", "Bytes of the files with changes the bucket does not have yet", func() int64 { return snap().dirtyBytes })
	m.Gauge("mount_s3.sync.dirty.oldest_age", "s", "How long the oldest change the bucket does not have yet has waited", func() int64 { return snap().oldestAge })
	m.Gauge("mount_s3.sync.lost_found.files", "{file}", "Files in lost+found (each the losing side of a conflict)", func() int64 { return snap().lostFiles })
	m.Gauge("mount_s3.sync.lost_found.size", "By", "Bytes of the files in lost+found", func() int64 { return snap().lostBytes })
}

// syncState is what sync mode's gauges read from the local layer, taken at most once a second
// however many gauges a collection reads (each is a pass over the changed records).
type syncState struct {
	dirtyBytes, oldestAge, lostFiles, lostBytes int64
}

func (c *syncCore) syncSnapshot() func() syncState {
	var mu sync.Mutex
	var at time.Time
	var last syncState
	return func() syncState {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if now.Sub(at) < time.Second {
			return last
		}
		var s syncState
		if sum, _, err := c.summary(context.Background()); err == nil {
			s = syncState{dirtyBytes: sum.PendingBytes, lostFiles: int64(sum.LostFound), lostBytes: sum.LostFoundBytes}
			if !sum.OldestPending.IsZero() {
				s.oldestAge = int64(now.Sub(sum.OldestPending) / time.Second)
			}
		}
		at, last = now, s
		return s
	}
}
