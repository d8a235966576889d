// Command bench measures mount-s3 end to end and puts each figure next to what the raw
// aws-sdk-go-v2 client does against the same server in the same run, so a slow row reads
// as "the mount costs this much" rather than "this machine is slow".
//
// Every workload runs on a real mount: the mount-s3 binary, built with `go build`, runs as
// a child process in --foreground at a temporary directory, and this process reads and
// writes through the kernel like cat, dd or ls would. The mount is remounted before each
// workload, so caches start cold and the peak RSS column (VmHWM of the mount-s3 process)
// is that workload's own peak. By default the server is the in-memory embedded server,
// started in this process on loopback; BENCH_ENDPOINT / BENCH_BUCKET / BENCH_REGION point
// the run at any S3-compatible server instead.
//
//	go run ./bench            # full sizes (1 GiB objects, 10,000-object directory)
//	go run ./bench --quick    # tiny sizes, checks the data; what TestQuick runs in CI
//
// Figures are rates (MB = 10^6 bytes) except the ls rows, which are seconds; ratio is
// always mount-s3 speed / raw SDK speed, so below 1 means the mount is slower.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mount-s3/mount-s3/internal/buildbin"
)

// config sizes the workloads. Quick and full differ only here.
type config struct {
	quick         bool
	bigSize       int64         // sequential read, random read, write and cache rows
	multiSize     int64         // each object of the concurrent-readers row
	readers       int           // concurrent sequential readers
	smallFiles    int           // files of the create and read rows
	smallSize     int           // bytes per small file
	workers       int           // parallel writers/readers of small files, both sides
	dirEntries    int           // objects in the listed directory
	randDur       time.Duration // per thread count of the random-read rows
	randThreads   []int
	partSize      int64          // ranged GET and multipart part size of the baselines (the mount's default)
	inFlight      int            // requests in flight per stream, as the mount's default (10 Gbit/s / 80 MB/s)
	only          *regexp.Regexp // nil: every workload
	treeDirs      int            // directories of the find/du tree
	treeFiles     int            // objects in each of them
	walkObjects   int            // objects of the memory-after-walks row, 1,000 a directory
	bigDirEntries int            // entries of the one big directory's ls -l row
	profiles      []profile      // network profiles to run, one table each
	profile       profile        // the one this run uses
	mountArgs     []string       // more flags for every mount (--mount-args)
}

func fullConfig() config {
	return config{bigSize: 1 << 30, multiSize: 256 << 20, readers: 4, smallFiles: 1000, smallSize: 4 << 10,
		workers: 8, dirEntries: 10000, randDur: 20 * time.Second, randThreads: []int{1, 4},
		partSize: 8 << 20, inFlight: 16, treeDirs: 100, treeFiles: 100, walkObjects: 200_000, bigDirEntries: 1_000_000}
}

// quickConfig keeps every code path (several parts per object, several list pages) at a
// size CI can afford.
func quickConfig() config {
	return config{quick: true, bigSize: 24 << 20, multiSize: 8 << 20, readers: 4, smallFiles: 50, smallSize: 4 << 10,
		workers: 8, dirEntries: 1100, randDur: time.Second, randThreads: []int{1, 4},
		partSize: 8 << 20, inFlight: 16, treeDirs: 10, treeFiles: 30, walkObjects: 3000, bigDirEntries: 12_000}
}

// row is one line of the table.
type row struct {
	name       string
	unit       string  // "MB/s", "ops/s", "files/s" or "s"
	ours, base float64 // for unit "s", seconds taken (lower is better)
	floor      float64 // seconds: the fewest round trips any client needs times the latency; 0 = none
	rssKiB     int64
	cpuSecs    float64 // user+system CPU of the mount process by the end of the row
	reqs       string  // requests the mount side sent (embedded server only)
	na         string  // set when the row cannot run on this binary
	err        error
}

func (r row) ratio() float64 {
	if r.ours <= 0 || r.base <= 0 {
		return 0
	}
	if r.unit == "s" {
		return r.base / r.ours
	}
	return r.ours / r.base
}

func main() {
	if floorChild() {
		return
	}
	quick := flag.Bool("quick", false, "tiny sizes and data checks, for CI")
	randSecs := flag.Float64("rand-seconds", 0, "duration of each random-read row (default 20, 1 with --quick)")
	only := flag.String("only", "", "run only the workloads whose name matches this regular expression")
	prof := flag.String("profile", "both", "network profile: loopback (the server as it is), s3 (a shaper in front of it: first-byte latency, per-request and total rate) or both")
	lat := flag.Duration("latency", s3Profile.latency, "S3 profile: first-byte latency of every request")
	listLat := flag.Duration("list-latency", s3Profile.listLatency, "S3 profile: first-byte latency of a LIST")
	perReq := flag.Float64("request-rate", s3Profile.perRequest/1e6, "S3 profile: MB/s of each request, each way")
	total := flag.Float64("total-rate", s3Profile.total/1e6, "S3 profile: MB/s of all requests together, each way")
	bigDir := flag.Int("big-dir-entries", 0, "entries of the one big directory's ls -l row (default 1,000,000; 12,000 with --quick)")
	mountArgs := flag.String("mount-args", "", "more flags for every mount, space-separated (e.g. \"--metrics-addr 127.0.0.1:0\" to measure with metrics on)")
	flag.Parse()
	s3p := profile{name: "S3-like", latency: *lat, listLatency: *listLat, perRequest: *perReq * 1e6, total: *total * 1e6}
	cfg := fullConfig()
	if *quick {
		cfg = quickConfig()
	}
	cfg.mountArgs = strings.Fields(*mountArgs)
	if *bigDir > 0 {
		cfg.bigDirEntries = *bigDir
	}
	if *randSecs > 0 {
		cfg.randDur = time.Duration(*randSecs * float64(time.Second))
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: --only:", err)
			os.Exit(2)
		}
		cfg.only = re
	}
	switch *prof {
	case "loopback":
		cfg.profiles = []profile{loopbackProfile}
	case "s3":
		cfg.profiles = []profile{s3p}
	case "both":
		cfg.profiles = []profile{loopbackProfile, s3p}
	default:
		fmt.Fprintln(os.Stderr, "bench: --profile: expected loopback, s3 or both")
		os.Exit(2)
	}
	srv := serverOptions{endpoint: os.Getenv("BENCH_ENDPOINT"), bucket: os.Getenv("BENCH_BUCKET"), region: os.Getenv("BENCH_REGION")}
	var failed []string
	for _, p := range cfg.profiles {
		c := cfg
		c.profile = p
		fmt.Printf("\n== profile: %s\n", p.describe())
		if err := run(context.Background(), c, srv, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", p.name+":", err)
			failed = append(failed, p.name)
		}
	}
	buildbin.Cleanup()
	if len(failed) > 0 {
		os.Exit(1)
	}
}

// run seeds the bucket, runs every workload on both sides, prints the table to out and
// progress to logw. It fails if any workload failed.
func run(ctx context.Context, cfg config, so serverOptions, out, logw io.Writer) error {
	// A signal must not leave a mount behind: unmount everything this run mounted, delete an
	// external bucket's objects, then go.
	var cur atomic.Pointer[env]
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	defer func() { signal.Stop(sigs); close(done) }()
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(logw, "bench: %v: unmounting\n", s)
			unmountAll()
			if e := cur.Load(); e != nil {
				e.teardown()
			}
			buildbin.Cleanup()
			os.Exit(130)
		case <-done:
		}
	}()
	defer unmountAll()

	e, err := setup(ctx, cfg, so, logw)
	if err != nil {
		return err
	}
	cur.Store(e)
	defer e.teardown()
	if err := e.seed(); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	e.headLat, e.listLat = e.probe()

	var rows []row
	for _, w := range e.workloads() {
		if cfg.only != nil && !cfg.only.MatchString(w.name) {
			continue
		}
		fmt.Fprintf(logw, "== %s\n", w.name)
		for _, r := range w.fn() {
			if r.err != nil {
				fmt.Fprintf(logw, "   %s FAILED: %v\n", r.name, r.err)
			}
			rows = append(rows, r)
		}
	}
	printTable(out, rows, e)

	var failed []string
	for _, r := range rows {
		if r.err != nil {
			failed = append(failed, r.name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d workload(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}

func printTable(w io.Writer, rows []row, e *env) {
	fmt.Fprintf(w, "%-40s %14s %14s %7s %10s %12s\n", "workload", "mount-s3", "raw SDK", "ratio", "peak RSS", "RT floor")
	for _, r := range rows {
		ours, base, ratio, rss := fig(r.ours, r.unit), fig(r.base, r.unit), fmt.Sprintf("%.2f", r.ratio()), fmt.Sprintf("%d MiB", r.rssKiB>>10)
		switch {
		case r.err != nil:
			ours, ratio = "FAILED", "-"
			if r.base <= 0 {
				base = "-"
			}
		case r.na != "":
			fmt.Fprintf(w, "%-40s %s\n", r.name, r.na)
			continue
		}
		if r.rssKiB == 0 {
			rss = "-"
		}
		floor := "-"
		if r.floor > 0 {
			floor = fmt.Sprintf("%.3f s", r.floor)
			if r.ours > 0 && r.err == nil {
				floor += fmt.Sprintf(" %.1fx", r.ours/r.floor)
			}
		}
		fmt.Fprintf(w, "%-40s %14s %14s %7s %10s %16s\n", r.name, ours, base, ratio, rss, floor)
	}
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(w, "FAILED %s: %v\n", r.name, r.err)
		}
	}
	fmt.Fprintf(w, "\nwhat the mount did per row (its CPU time since mounting; requests it sent, embedded server only):\n")
	for _, r := range rows {
		if r.na == "" {
			fmt.Fprintf(w, "  %-34s CPU %5.2f s  %s\n", r.name, r.cpuSecs, r.reqs)
		}
	}
	fmt.Fprintf(w, "\nratio = mount-s3 speed / raw SDK speed (rows in seconds: SDK seconds / mount seconds); MB = 10^6 bytes.\n")
	fmt.Fprintf(w, "RT floor = the fewest round trips any client needs for the row times the latency of each (a LIST page per 1,000 names, a GET per small file), and mount-s3's time as a multiple of it.\n")
	fmt.Fprintf(w, "peak RSS = VmHWM of the mount-s3 process, which is remounted for every workload (ls warm shares the cold row's mount).\n")
	fmt.Fprintf(w, "baselines: %d MiB ranged GETs / multipart parts, %d in flight per stream (the mount's defaults); random reads: 4 KiB GETs, same thread count; small files: %d parallel PUT/GET; ls: ListObjectsV2 pages with delimiter.\n",
		e.cfg.partSize>>20, e.cfg.inFlight, e.cfg.workers)
	if !e.dropOK {
		fmt.Fprintf(w, "note: could not write /proc/sys/vm/drop_caches; reads rely on the fresh mount for a cold page cache.\n")
	}
	if len(e.cfg.mountArgs) > 0 {
		fmt.Fprintf(w, "every mount also ran with: %s\n", strings.Join(e.cfg.mountArgs, " "))
	}
	fmt.Fprintf(w, "server: %s; %d CPUs shared by the server, the SDK client, the mount and the kernel;\n", e.serverDesc, runtime.NumCPU())
	fmt.Fprintf(w, "load average %s at the start, %s at the end (well above the CPU count, every figure is noisy).\n", e.loadStart, loadAvg())
	fmt.Fprintln(w, bottleneck(rows))
	for _, n := range floorNotes(rows, e) {
		fmt.Fprintln(w, n)
	}
	fmt.Fprintf(w, "server latency, one request at a time: HEAD %.2f ms, LIST (max-keys 1) %.2f ms; every lookup the mount does sends both.\n",
		e.headLat.Seconds()*1e3, e.listLat.Seconds()*1e3)
	if e.listLat > 3*e.headLat {
		fmt.Fprintf(w, "this server's LIST is %.0fx its HEAD and grows with the bucket (gofakes3 scans every key), so rows that look names up (create, read small files) are partly the server's cost.\n",
			e.listLat.Seconds()/e.headLat.Seconds())
	}
}

// bottleneck judges the server from the raw SDK's sequential read: if plain parallel GETs
// are slow, every ratio mostly measures the server, not the mount.
func bottleneck(rows []row) string {
	for _, r := range rows {
		if strings.HasPrefix(r.name, "seq read") && r.base > 0 {
			if r.base < 1000 {
				return fmt.Sprintf("server looks like the bottleneck: the raw SDK reads only %.0f MB/s, so ratios near 1 say the mount keeps up with this server, not with S3.", r.base)
			}
			return fmt.Sprintf("server is probably not the bottleneck: the raw SDK reads %.0f MB/s, so a row far below 1 is the mount's own cost.", r.base)
		}
	}
	return "server: no sequential-read baseline to judge it by."
}

func fig(v float64, unit string) string {
	switch {
	case v <= 0:
		return "-"
	case unit == "s":
		return fmt.Sprintf("%.3f s", v)
	case v < 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

// size renders a byte count as the row names use it: "1 GiB", "256 MiB", "4 KiB".
func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
