package conformance

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// otlpReceiver is a local OTLP/HTTP endpoint: it decodes each export and keeps the names and
// summed integer values of the metrics it carried.
type otlpReceiver struct {
	mu      sync.Mutex
	exports int
	values  map[string]int64
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil || req.URL.Path != "/v1/metrics" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var msg colmetrics.ExportMetricsServiceRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.exports++
	for _, rm := range msg.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				var n int64
				if s := m.GetSum(); s != nil {
					for _, p := range s.DataPoints {
						n += p.GetAsInt()
					}
				}
				if h := m.GetHistogram(); h != nil {
					for _, p := range h.DataPoints {
						n += int64(p.Count)
					}
				}
				r.values[m.Name] = n
			}
		}
	}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
	w.Write(out)
}

func (r *otlpReceiver) value(name string) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.values[name]
	return v, ok
}

// Metrics through both exporters during a workload: the Prometheus endpoint shows the FUSE
// and S3 counters moving, and a local OTLP receiver gets exports it can decode, with the same
// instruments. --log-metrics writes summaries to the log.
func TestMetricsExport(t *testing.T) {
	recv := &otlpReceiver{values: map[string]int64{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	otlp := &http.Server{Handler: recv}
	go otlp.Serve(ln)
	t.Cleanup(func() { otlp.Close() })

	promAddr := harness.FreeAddr(t)
	srv, store := harness.NewServer(t)
	m := harness.MountServer(t, srv, store, harness.Options{Args: []string{"--metrics-addr", promAddr,
		"--otlp-endpoint", "http://" + ln.Addr().String(), "--otlp-export-interval", "1", "--log-metrics"}})

	scrape := func() string { return scrapeMetrics(t, promAddr) }
	// sample sums the series of name whose labels include label ("" for all).
	sample := func(text, name string, label ...string) (float64, bool) {
		var total float64
		found := false
		for _, line := range strings.Split(text, "\n") {
			if (strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ")) && (len(label) == 0 || strings.Contains(line, label[0])) {
				var v float64
				f := strings.Fields(line)
				if _, err := fmtSscan(f[len(f)-1], &v); err == nil {
					total += v
					found = true
				}
			}
		}
		return total, found
	}
	before := scrape()
	data := bytes.Repeat([]byte("metrics"), 300_000) // 2.1 MB
	require.NoError(t, os.WriteFile(m.Path("f"), data, 0o644))
	got, err := os.ReadFile(m.Path("f"))
	require.NoError(t, err)
	require.Equal(t, data, got)
	_, err = os.Stat(m.Path("missing"))
	require.True(t, os.IsNotExist(err))
	after := scrape()

	for _, name := range []string{"fuse_operations_total", "s3_client_requests_total", "s3_client_body_size_bytes_total", "fuse_io_size_bytes_total"} {
		b, _ := sample(before, name)
		a, ok := sample(after, name)
		require.True(t, ok, "%s missing from /metrics", name)
		require.Greater(t, a, b, "%s did not move during the workload", name)
	}
	for _, want := range []string{`fuse_operations_total{error_type="ENOENT",fuse_operation="LookUpInode"`,
		`s3_client_request_duration_seconds_bucket{`, `mount_s3_memory_budget_limit_bytes`,
		`mount_s3_prefetch_readers`, `mount_s3_prefetch_window_bytes`, `mount_s3_uploads_in_flight`} {
		require.True(t, strings.Contains(after, want), "/metrics has no %s", want)
	}
	uploads, _ := sample(after, "mount_s3_uploads_total")
	require.EqualValues(t, 1, uploads, "the streaming upload is counted")
	headBytes, _ := sample(after, "s3_client_body_size_bytes_total", `s3_operation="HeadObject"`)
	require.Zero(t, headBytes, "a HEAD receives no body")
	written, _ := sample(after, "fuse_io_size_bytes_total", `direction="write"`)
	require.GreaterOrEqual(t, written, float64(len(data)))

	eventually(t, 10*time.Second, "an OTLP export with the S3 and FUSE counters", func() bool {
		s3, ok1 := recv.value("s3.client.requests")
		fuse, ok2 := recv.value("fuse.operations")
		return ok1 && ok2 && s3 > 0 && fuse > 0
	})
	eventually(t, 10*time.Second, "a metrics summary in the log", func() bool {
		return strings.Contains(m.Logs(), "metrics: ") && strings.Contains(m.Logs(), "s3.client.requests=")
	})
}

func fmtSscan(s string, v *float64) (int, error) { return fmt.Sscan(s, v) }

// Sync mode's gauges: the changes not written back (bytes, the oldest one's age) and the
// import's queue, and the write-back's counters once flushed.
func TestSyncMetrics(t *testing.T) {
	promAddr := harness.FreeAddr(t)
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, t.TempDir(), "--metrics-addr", promAddr, "--write-back-delay", "1h")
	scrape := func() string { return scrapeMetrics(t, promAddr) }
	value := func(text, name string) float64 {
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
				f := strings.Fields(line)
				var v float64
				_, err := fmtSscan(f[len(f)-1], &v)
				require.NoError(t, err, line)
				return v
			}
		}
		t.Fatalf("/metrics has no %s", name)
		return 0
	}
	require.NoError(t, os.WriteFile(m.Path("a"), bytes.Repeat([]byte("a"), 1000), 0o644))
	require.NoError(t, os.WriteFile(m.Path("b"), bytes.Repeat([]byte("b"), 500), 0o644))
	text := scrape()
	require.EqualValues(t, 1500, value(text, "mount_s3_sync_dirty_size_bytes"))
	require.GreaterOrEqual(t, value(text, "mount_s3_sync_dirty_oldest_age_seconds"), 0.0)
	value(text, "mount_s3_sync_import_pending")
	require.Zero(t, value(text, "mount_s3_sync_lost_found_files"))
	flush(t, m)
	time.Sleep(1100 * time.Millisecond) // the gauges read the layer at most once a second
	text = scrape()
	require.Zero(t, value(text, "mount_s3_sync_dirty_size_bytes"))
	require.EqualValues(t, 2, value(text, "mount_s3_sync_uploads_total"))
}

// scrapeMetrics reads the Prometheus page a mount serves at addr.
func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
