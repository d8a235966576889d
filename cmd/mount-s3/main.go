// Command mount-s3 mounts an S3 bucket (or a prefix of one) as a local file system through
// FUSE. Its command line is a drop-in for Mountpoint for Amazon S3's: `mount-s3 [OPTIONS]
// BUCKET DIR`. It parses flags, builds the layers (store, file system, mount), handles
// signals and exits with one clear line on bad input.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/mount-s3/mount-s3/impl/cache"
	"github.com/mount-s3/mount-s3/impl/control"
	"github.com/mount-s3/mount-s3/impl/fetchahead"
	"github.com/mount-s3/mount-s3/impl/memory"
	"github.com/mount-s3/mount-s3/impl/metrics"
	"github.com/mount-s3/mount-s3/impl/read"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/streamfs"
	"github.com/mount-s3/mount-s3/impl/write"
	"github.com/mount-s3/mount-s3/mount"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	args := os.Args[1:]
	if isHelper(os.Args[0]) {
		var fake bool
		if args, fake = helperArgs(args); fake {
			os.Exit(0)
		}
	}
	os.Exit(run(args))
}

func run(args []string) int {
	if dir := os.Getenv(watchdogEnv); dir != "" {
		return runWatchdog(dir)
	}
	// The first word names a command; a bucket with a command's name is mounted as s3://NAME.
	if len(args) > 0 {
		switch args[0] {
		case "sync":
			return runSyncCommand(args[1:])
		case "status":
			return runStatusCommand(args[1:])
		case "help":
			fmt.Print(usage())
			return 0
		}
	}
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n\nFor more information, try '--help'.\n", err)
		return 2
	}
	switch {
	case o.help:
		fmt.Print(usage())
		return 0
	case o.version:
		fmt.Printf("mount-s3 %s\n", version)
		return 0
	}
	if err := checkMountDir(o.dir); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 2
	}
	if !o.foreground && os.Getenv(childEnv) == "" {
		return daemonize(args, o.dir)
	}
	ready := readyReporter()
	if err := serve(o, ready); err != nil {
		msg := explain(err, o)
		ready(errors.New(msg))
		fmt.Fprintf(os.Stderr, "error: %s\n", msg)
		return 1
	}
	return 0
}

// embeddedBucket makes sure the --embedded-store has the bucket. The first bucket of an empty
// store is created, since nothing there can be misspelt; another one needs --create-bucket,
// so that a typo does not mount an empty bucket beside the one meant.
func embeddedBucket(srv *embedded.Server, o *options) error {
	have, err := srv.Buckets()
	if err != nil {
		return fmt.Errorf("embedded store in %s: %w", o.embeddedStore, err)
	}
	if slices.Contains(have, o.bucket) {
		return nil
	}
	if len(have) > 0 && !o.createBucket {
		return fmt.Errorf("bucket %q is not in the embedded store %s, which has: %s; check the name, or add --create-bucket to create it",
			o.bucket, o.embeddedStore, strings.Join(have, ", "))
	}
	return srv.CreateBucket(o.bucket)
}

// checkMountDir refuses a mount point that does not exist, is not a directory, or is
// already a mount point, before anything starts.
func checkMountDir(dir string) error {
	if fd, ok := fuseFD(dir); ok {
		return checkFuseFD(fd)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("mount point %s is left from a mount whose process is gone (transport endpoint is not connected): run 'umount %s' first", abs, abs)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mount point %s does not exist", abs)
	case err != nil:
		return fmt.Errorf("mount point %s: %v", abs, err)
	case !st.IsDir():
		return fmt.Errorf("mount point %s is not a directory", abs)
	}
	if mounted, _ := mount.IsMountPoint(abs); mounted {
		return fmt.Errorf("mount point %s is already mounted", abs)
	}
	return nil
}

// serve builds the layers, mounts, reports readiness, and blocks until unmounted.
func serve(o *options, ready func(error)) error {
	logger, logTo, closeLog, err := newLogger(o)
	if err != nil {
		return err
	}
	defer closeLog()

	ctx := context.Background()
	met, err := newMetrics(o, logger)
	if err != nil {
		return err
	}
	defer stopMetrics(met, logger)
	cfg := s3.Config{
		Bucket: o.bucket, Region: o.region, EndpointURL: o.endpointURL, ForcePathStyle: o.forcePathStyle,
		Profile: o.profile, NoSignRequest: o.noSignRequest, CABundle: o.caBundle,
		UserAgentPrefix: o.userAgentPrefix, RequesterPays: o.requesterPays, ExpectedBucketOwner: o.expectedBucketOwner,
		DualStack: o.dualStack, Accelerate: o.transferAcceleration, BindInterfaces: o.bind, Log: logger,
	}
	if met != nil {
		cfg.Observe = met
	}
	if o.debugCRT {
		// Its own handler: --debug-crt turns on the client's debug lines, not everyone's.
		cfg.RequestLog = slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.embeddedStore != "" {
		srv, err := embedded.Start(embedded.Options{Dir: o.embeddedStore})
		if err != nil {
			var inUse embedded.ErrInUse
			if errors.As(err, &inUse) {
				return err
			}
			return fmt.Errorf("embedded store in %s: %w", o.embeddedStore, err)
		}
		defer srv.Close()
		if err := embeddedBucket(srv, o); err != nil {
			return err
		}
		cfg.EndpointURL, cfg.ForcePathStyle, cfg.Region = srv.URL(), true, "us-east-1"
		cfg.StaticCredentials = embedded.Credentials
	}
	store, err := s3.NewSDKStore(ctx, cfg)
	if err != nil {
		return err
	}
	if err := store.CheckBucket(ctx); err != nil {
		logger.Debug("bucket check failed", "error", err.Error())
		return err
	}
	// Every request of the mount passes Confine last: none can name a key outside the prefix.
	data, closeCaches, err := withCaches(ctx, o, cfg, s3.Confine(store, o.prefix), met)
	if err != nil {
		return err
	}
	defer closeCaches()

	// Half the memory target is for prefetched and uploading data; the rest is the garbage
	// collector's headroom and everything else, which the soft limit keeps within the target.
	target := o.memoryTargetMiB << 20
	debug.SetMemoryLimit(target)
	budget := memory.NewBudget(target / 2)
	budgetMetrics(met, budget)
	readCfg := read.Config{Budget: budget, PartSize: o.downloadPartSize(), MaxInFlight: o.requestsInFlight(),
		MaxWindow: int64(o.requestsInFlight()) * o.effectiveReadPartSize(), Stats: &read.Stats{}}
	readMetrics(met, readCfg.Stats)
	// The control socket of `mount-s3 status` and `sync --flush` (impl/control). A mount
	// without one still serves files; only those commands cannot reach it.
	ctl, err := control.Listen(logger)
	socket := ""
	if err != nil {
		logger.Warn("no control socket: 'mount-s3 status' and 'mount-s3 sync --flush' cannot reach this mount", "error", err.Error())
	} else {
		socket = ctl.Path()
	}
	var core mount.FileSystem
	var answer control.Handler
	if o.syncDir != "" {
		readCfg.Store = data
		sc, err := newSyncCore(o, data, readCfg, socket, logger)
		if err != nil {
			if ctl != nil {
				ctl.Close()
			}
			return err
		}
		sc.metrics(met)
		defer sc.close()
		core, answer = sc.fs, sc.control
	} else {
		var ahead *fetchahead.Cache
		if !o.noSmallFilePrefetch {
			// An eighth of the data budget at most, so that fetching ahead never starves the
			// prefetcher of the files being read.
			ahead = fetchahead.New(fetchahead.Config{Store: data, Budget: budget, MaxBytes: min(fetchahead.DefaultMaxBytes, budget.Limit()/8)})
			defer ahead.Close()
		}
		var sfs *streamfs.FS
		sfs, err = streamfs.New(streamfs.Config{FetchAhead: ahead,
			Store: data, Logger: logger, ControlSocket: socket, Prefix: o.prefix, UID: o.uid, GID: o.gid,
			FileMode: o.fileMode, DirMode: o.dirMode, MetadataTTL: o.metadataTTL, NegativeTTL: o.negativeTTL,
			AllowOverwrite: o.allowOverwrite, AllowDelete: o.allowDelete,
			Read: readCfg,
			Upload: write.Config{Budget: budget, PartSize: o.uploadPartSize(), MaxInFlight: o.requestsInFlight(), Options: s3.WriteOptions{
				StorageClass: o.storageClass, SSE: o.sse, SSEKMSKeyID: o.sseKMSKeyID, Checksum: o.checksum(),
			}, InferContentType: o.inferContentType},
		})
		if err != nil {
			if ctl != nil {
				ctl.Close()
			}
			return err
		}
		uploadMetrics(met, sfs)
		core, answer = sfs, streamingControl(o, sfs)
	}
	if ctl != nil {
		// Closed before a sync mount's final write-back (deferred above, so run after this):
		// the mount is gone by then, and no command can find the socket.
		defer ctl.Close()
		ctl.Serve(answer)
	}
	fsName := o.fsName
	if fsName == "" {
		fsName = "mount-s3"
	}
	m, err := mount.Mount(o.dir, core, mount.Options{
		FSName: fsName, ReadOnly: o.readOnly, AllowOther: o.allowOther, Logger: logger, DebugFUSE: o.debugFUSE,
		DefaultPermissions: o.syncDir != "",
		MaxThreads:         o.maxThreads,
		Observe:            withInvariants(observer(met), core, logger),
	})
	if err != nil {
		return err
	}
	if o.autoUnmount && !m.External() {
		if err := startWatchdog(m.Dir()); err != nil {
			m.Unmount()
			return fmt.Errorf("--auto-unmount: %w", err)
		}
	}
	logger.Info("mounted", "bucket", o.bucket, "prefix", o.prefix, "dir", m.Dir())
	ready(nil)
	joinCtx, stop := context.WithCancel(ctx)
	defer stop()
	go unmountOnSignal(m, logger, stop)
	err = m.Join(joinCtx)
	if m.External() && joinCtx.Err() != nil {
		return nil // stopped by a signal; the caller that mounted the descriptor unmounts
	}
	if err == nil {
		logger.Info("unmounted", "dir", m.Dir())
	}
	return err
}

// unmountOnSignal unmounts on SIGINT or SIGTERM. A busy mount stays mounted and says so, as
// umount(8) would; another signal tries again.
//
// A mount served on /dev/fd/N was made by the caller, who also unmounts it: a signal then
// stops serving (stop) and the process exits, as Mountpoint does under the CSI driver.
func unmountOnSignal(m *mount.Mounted, logger *slog.Logger, stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	for sig := range sigs {
		if m.External() {
			logger.Info("signal received, stopping; the caller that mounted the descriptor unmounts it", "signal", sig.String(), "dir", m.Dir())
			stop()
			return
		}
		logger.Info("signal received, unmounting", "signal", sig.String())
		err := m.Unmount()
		if err == nil {
			return
		}
		if errors.Is(err, mount.ErrBusy) {
			logger.Error("cannot unmount: the mount is busy; close the files open in it and try again", "dir", m.Dir())
			fmt.Fprintf(os.Stderr, "mount-s3: cannot unmount %s: mount is busy (close open files and leave the directory, then retry)\n", m.Dir())
			continue
		}
		logger.Error("unmount failed", "error", err)
	}
}

// uploadPartSize is --write-part-size, else --part-size, else the default.
func (o *options) uploadPartSize() int64 {
	if o.writePartSize != 0 {
		return o.writePartSize
	}
	return o.partSize
}

// checksum is the part checksum of uploads: crc32c unless --upload-checksums off.
func (o *options) checksum() string {
	if o.uploadChecksums == "off" {
		return ""
	}
	return "crc32c"
}

// downloadPartSize is --read-part-size, else --part-size, else the default.
func (o *options) downloadPartSize() int64 {
	if o.readPartSize != 0 {
		return o.readPartSize
	}
	return o.partSize
}

// requestsInFlight sizes the parallel GETs of one reader and the parallel parts of one
// upload from the throughput target, as Mountpoint does: one S3 connection carries roughly
// 80 MB/s, so 10 Gbit/s needs about 16 of them.
func (o *options) requestsInFlight() int {
	const perRequestMBps = 80
	n := int(math.Ceil(o.throughputGbps * 1000 / 8 / perRequestMBps))
	return max(4, min(n, 256))
}

// effectiveReadPartSize is the part size the prefetcher will use.
func (o *options) effectiveReadPartSize() int64 {
	if n := o.downloadPartSize(); n != 0 {
		return n
	}
	return read.DefaultPartSize
}

// withCaches puts the data caches in front of store: a shared cache in the --cache-xz bucket,
// then the local --cache directory, so a block is looked for on local disk first, then in
// the shared bucket, then in the mounted bucket. It returns the store to read through and a
// function that closes the caches.
func withCaches(ctx context.Context, o *options, cfg s3.Config, store s3.Store, met *metrics.Metrics) (s3.Store, func(), error) {
	var closers []func() error
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	data := store
	if o.cacheXZ != "" {
		xzCfg := cfg
		xzCfg.Bucket = o.cacheXZ
		blocks, err := s3.NewSDKStore(ctx, xzCfg)
		if err != nil {
			return nil, nil, fmt.Errorf("--cache-xz: %w", err)
		}
		if err := blocks.CheckBucket(ctx); err != nil {
			return nil, nil, fmt.Errorf("--cache-xz: %w", err)
		}
		shared := cache.NewShared(data, blocks, cache.SharedConfig{BlockSize: o.cacheBlockSizeKiB << 10})
		cacheMetrics(met, "shared", shared.Stats)
		closers = append(closers, shared.Close)
		data = shared
	}
	if o.cacheDir != "" {
		disk, err := cache.NewDisk(data, cache.DiskConfig{Dir: o.cacheDir, MaxSize: o.maxCacheSizeMiB << 20, BlockSize: o.cacheBlockSizeKiB << 10})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("--cache %s: %w", o.cacheDir, err)
		}
		closers = append(closers, disk.Close)
		cacheMetrics(met, "disk", disk.Stats)
		data = disk
	}
	return data, closeAll, nil
}
