// Package metrics owns the mount's OpenTelemetry instruments and their exporters: OTLP/HTTP
// push (--otlp-endpoint, --otlp-export-interval), a Prometheus /metrics endpoint
// (--metrics-addr) and a periodic summary in the log (--log-metrics). It is the only package
// that imports OpenTelemetry; the layers report through plain hooks (mount.Options.Observe,
// s3.Config.Observe) and callbacks for the values they already keep (memory budget, caches,
// the sync engine), so the hot paths pay an atomic add and nothing when metrics are off.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Config selects the exporters. With none set, New returns a Metrics whose methods do nothing.
type Config struct {
	OTLPEndpoint string        // base URL of an OTLP/HTTP receiver; /v1/metrics is added if it has no path
	OTLPInterval time.Duration // 0 = 60 s, as Mountpoint
	MetricsAddr  string        // HOST:PORT to serve Prometheus /metrics on
	LogEvery     time.Duration // > 0: log a summary this often (--log-metrics)
	Logger       *slog.Logger
	Version      string
	Attributes   []attribute.KeyValue // resource attributes: bucket, mode
}

// Metrics is the set of instruments of one mount. A nil *Metrics is valid and records nothing.
type Metrics struct {
	provider *sdkmetric.MeterProvider
	meter    metric.Meter
	manual   *sdkmetric.ManualReader // for the log summary
	server   *http.Server
	addr     string
	stopLog  chan struct{}
	logDone  sync.WaitGroup

	fuseOps      metric.Int64Counter
	fuseDuration metric.Float64Histogram
	fuseBytes    metric.Int64Counter
	s3Requests   metric.Int64Counter
	s3Duration   metric.Float64Histogram
	s3Bytes      metric.Int64Counter
	s3Retries    metric.Int64Counter
}

// New builds the meter provider with the exporters cfg names.
func New(cfg Config) (*Metrics, error) {
	if cfg.OTLPEndpoint == "" && cfg.MetricsAddr == "" && cfg.LogEvery <= 0 {
		return nil, nil
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, append([]attribute.KeyValue{
		semconv.ServiceName("mount-s3"), semconv.ServiceVersion(cfg.Version)}, cfg.Attributes...)...)
	opts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	m := &Metrics{}
	if cfg.OTLPEndpoint != "" {
		u, err := url.Parse(cfg.OTLPEndpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("--otlp-endpoint %s: not a URL", cfg.OTLPEndpoint)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/metrics"
		}
		exp, err := otlpmetrichttp.New(context.Background(), otlpmetrichttp.WithEndpointURL(u.String()))
		if err != nil {
			return nil, fmt.Errorf("--otlp-endpoint %s: %w", cfg.OTLPEndpoint, err)
		}
		interval := cfg.OTLPInterval
		if interval <= 0 {
			interval = 60 * time.Second
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(interval))))
	}
	if cfg.MetricsAddr != "" {
		reg := prometheus.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return nil, fmt.Errorf("--metrics-addr: %w", err)
		}
		opts = append(opts, sdkmetric.WithReader(exp))
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("--metrics-addr %s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		m.server, m.addr = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln.Addr().String()
		go m.server.Serve(ln)
	}
	if cfg.LogEvery > 0 {
		m.manual = sdkmetric.NewManualReader()
		opts = append(opts, sdkmetric.WithReader(m.manual))
	}
	m.provider = sdkmetric.NewMeterProvider(opts...)
	m.meter = m.provider.Meter("github.com/mount-s3/mount-s3")
	if err := m.instruments(); err != nil {
		m.Shutdown(context.Background())
		return nil, err
	}
	if m.manual != nil && cfg.Logger != nil {
		m.stopLog = make(chan struct{})
		m.logDone.Add(1)
		go m.logLoop(cfg.LogEvery, cfg.Logger)
	}
	return m, nil
}

// Durations are in seconds, sizes in bytes, following OpenTelemetry's conventions.
var durationBuckets = []float64{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

func (m *Metrics) instruments() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	m.fuseOps, err = m.meter.Int64Counter("fuse.operations", metric.WithUnit("{operation}"),
		metric.WithDescription("FUSE operations answered, by operation and error (errno name, absent on success)"))
	add(err)
	m.fuseDuration, err = m.meter.Float64Histogram("fuse.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to answer a FUSE operation"), metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	m.fuseBytes, err = m.meter.Int64Counter("fuse.io.size", metric.WithUnit("By"),
		metric.WithDescription("Bytes read and written through the mount, by direction"))
	add(err)
	m.s3Requests, err = m.meter.Int64Counter("s3.client.requests", metric.WithUnit("{request}"),
		metric.WithDescription("HTTP attempts to the store, by S3 operation and HTTP status (0: no answer)"))
	add(err)
	m.s3Duration, err = m.meter.Float64Histogram("s3.client.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of one HTTP attempt to the store"), metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	m.s3Bytes, err = m.meter.Int64Counter("s3.client.body.size", metric.WithUnit("By"),
		metric.WithDescription("Body bytes sent to and received from the store, by direction"))
	add(err)
	m.s3Retries, err = m.meter.Int64Counter("s3.client.retries", metric.WithUnit("{request}"),
		metric.WithDescription("HTTP attempts that repeated an earlier one (after a throttle, a 5xx or a network fault)"))
	add(err)
	return errors.Join(errs...)
}

// Addr is where /metrics is served, once New returned (with --metrics-addr).
func (m *Metrics) Addr() string {
	if m == nil {
		return ""
	}
	return m.addr
}

// FUSEOp records one answered FUSE operation; errno is "" on success.
func (m *Metrics) FUSEOp(op string, d time.Duration, errno string) {
	if m == nil {
		return
	}
	ctx := context.Background()
	attrs := []attribute.KeyValue{attribute.String("fuse.operation", op)}
	if errno != "" {
		attrs = append(attrs, attribute.String("error.type", errno))
	}
	set := metric.WithAttributeSet(attribute.NewSet(attrs...))
	m.fuseOps.Add(ctx, 1, set)
	m.fuseDuration.Record(ctx, d.Seconds(), set)
}

// FUSEBytes records bytes read (write=false) or written through the mount.
func (m *Metrics) FUSEBytes(n int, write bool) {
	if m == nil || n <= 0 {
		return
	}
	dir := "read"
	if write {
		dir = "write"
	}
	m.fuseBytes.Add(context.Background(), int64(n), metric.WithAttributes(attribute.String("direction", dir)))
}

// S3Attempt records one HTTP attempt to the store.
func (m *Metrics) S3Attempt(op string, status int, d time.Duration, sent, received int64, retry bool) {
	if m == nil {
		return
	}
	ctx := context.Background()
	set := metric.WithAttributeSet(attribute.NewSet(attribute.String("s3.operation", op), attribute.Int("http.response.status_code", status)))
	m.s3Requests.Add(ctx, 1, set)
	m.s3Duration.Record(ctx, d.Seconds(), set)
	if sent > 0 {
		m.s3Bytes.Add(ctx, sent, metric.WithAttributes(attribute.String("direction", "sent"), attribute.String("s3.operation", op)))
	}
	if received > 0 {
		m.s3Bytes.Add(ctx, received, metric.WithAttributes(attribute.String("direction", "received"), attribute.String("s3.operation", op)))
	}
	if retry {
		m.s3Retries.Add(ctx, 1, metric.WithAttributes(attribute.String("s3.operation", op)))
	}
}

// Gauge registers a value read at each export: name, unit and description as OpenTelemetry
// names them, f returning the current value.
func (m *Metrics) Gauge(name, unit, desc string, f func() int64) error {
	if m == nil {
		return nil
	}
	_, err := m.meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(f())
			return nil
		}))
	return err
}

// Counter registers a monotonic total kept elsewhere (a cache's hits, the engine's uploads),
// read at each export.
func (m *Metrics) Counter(name, unit, desc string, f func() int64) error {
	if m == nil {
		return nil
	}
	_, err := m.meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(f())
			return nil
		}))
	return err
}

// Shutdown exports what is left (OTLP) and stops the exporters.
func (m *Metrics) Shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	if m.stopLog != nil {
		close(m.stopLog)
		m.logDone.Wait()
	}
	var errs []error
	if m.server != nil {
		errs = append(errs, m.server.Shutdown(ctx))
	}
	errs = append(errs, m.provider.Shutdown(ctx))
	return errors.Join(errs...)
}

func (m *Metrics) logLoop(every time.Duration, log *slog.Logger) {
	defer m.logDone.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stopLog:
			return
		case <-t.C:
			if s := m.Summary(); s != "" {
				log.Info("metrics: " + s)
			}
		}
	}
}

// Summary is one line of the current totals: each counter's sum, each histogram's count and
// mean, each gauge's value, sorted by name. It needs --log-metrics (a manual reader).
func (m *Metrics) Summary() string {
	if m == nil || m.manual == nil {
		return ""
	}
	var rm metricdata.ResourceMetrics
	if err := m.manual.Collect(context.Background(), &rm); err != nil {
		return "collecting failed: " + err.Error()
	}
	var parts []string
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			switch d := mt.Data.(type) {
			case metricdata.Sum[int64]:
				var n int64
				for _, p := range d.DataPoints {
					n += p.Value
				}
				parts = append(parts, fmt.Sprintf("%s=%d", mt.Name, n))
			case metricdata.Gauge[int64]:
				var n int64
				for _, p := range d.DataPoints {
					n += p.Value
				}
				parts = append(parts, fmt.Sprintf("%s=%d", mt.Name, n))
			case metricdata.Histogram[float64]:
				var count uint64
				var sum float64
				for _, p := range d.DataPoints {
					count += p.Count
					sum += p.Sum
				}
				if count > 0 {
					parts = append(parts, fmt.Sprintf("%s.count=%d %s.mean=%.3gs", mt.Name, count, mt.Name, sum/float64(count)))
				}
			}
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
