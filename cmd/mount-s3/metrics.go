package main

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/mount-s3/mount-s3/impl/cache"
	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/metrics"
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
}
