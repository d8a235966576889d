package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/sync/watch"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// watchOptions are the options of sync mode's remote-change watcher (C2), embedded in options.
type watchOptions struct {
	pollInterval    time.Duration
	pollIntervalSet bool // --poll-interval given; else watch.DefaultInterval
	eventsAddr      string
}

// The local layer is what the watcher applies remote changes to.
var _ watch.Sink = (*local.Layer)(nil)

// pollEvery is the effective --poll-interval; zero disables polling.
func (w watchOptions) pollEvery() time.Duration {
	if !w.pollIntervalSet {
		return watch.DefaultInterval
	}
	return w.pollInterval
}

// watchFlags are the flags of the remote-change watcher, for the flags table.
func watchFlags() []flag {
	return []flag{
		{name: "poll-interval", value: "DURATION", help: "Sync mode: list every directory the mount has imported this often, to see other writers' changes; 0 disables (e.g. 10, 30s, 5m) [default: 10s]", apply: func(o *options, v string) error {
			w := &o.watchOptions
			d, err := parseDuration(v)
			if err != nil {
				return usagef("invalid value '%s' for '--poll-interval <DURATION>': %v", v, err)
			}
			w.pollInterval, w.pollIntervalSet = d, true
			o.syncFlagSet = firstNonEmpty(o.syncFlagSet, "--poll-interval")
			return nil
		}},
		{name: "events-addr", value: "HOST:PORT", help: "Sync mode: accept S3 event notifications (JSON POSTed by an S3 to SNS or webhook forwarder, or a MinIO webhook target) on this address, e.g. 127.0.0.1:8901 [default: off]", apply: func(o *options, v string) error {
			w := &o.watchOptions
			if err := checkHostPort(v); err != nil {
				return usagef("invalid value '%s' for '--events-addr <HOST:PORT>': %v", v, err)
			}
			w.eventsAddr = v
			o.syncFlagSet = firstNonEmpty(o.syncFlagSet, "--events-addr")
			return nil
		}},
	}
}

// checkHostPort accepts HOST:PORT with a numeric port (HOST may be empty: all interfaces).
func checkHostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("expected HOST:PORT, e.g. 127.0.0.1:8901 or :8901")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("the port must be a number from 0 to 65535")
	}
	return nil
}

// eventsShutdownTimeout bounds how long stop waits for notifications being received.
const eventsShutdownTimeout = 5 * time.Second

// startWatcher starts polling the imported directories (--poll-interval) and, with
// --events-addr, the endpoint for S3 event notifications, until stop is called or ctx is
// done. stop waits for both to end; call it before the layer is closed. An address that
// cannot be listened on is an error, so the mount fails at once rather than run deaf.
func startWatcher(ctx context.Context, o *options, layer *local.Layer, store s3.Store, onChange func(path string), logger *slog.Logger) (stop func(), err error) {
	interval, addr := o.pollEvery(), o.eventsAddr
	if interval <= 0 && addr == "" {
		return func() {}, nil
	}
	w := watch.New(watch.Config{
		Layer: layer, Store: store, Prefix: o.prefix, Bucket: o.bucket, Interval: interval,
		Params:   syncrule.Params{WriteBackDelay: o.writeBackDelay, ExpireAfter: o.expireAfter, ImportThreshold: o.importThreshold},
		Log:      logger,
		OnChange: onChange,
	})
	ctx, cancel := context.WithCancel(ctx)
	var srv *http.Server
	served := make(chan struct{})
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("--events-addr %s: %w", addr, err)
		}
		srv = &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
		go func() {
			defer close(served)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("the S3 event notification endpoint stopped", "addr", addr, "error", err.Error())
			}
		}()
		logger.Info("accepting S3 event notifications", "addr", ln.Addr().String())
	} else {
		close(served)
	}
	if interval > 0 {
		logger.Info("polling imported directories for other writers' changes", "interval", interval.String())
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		w.Run(ctx)
	}()
	return func() {
		if srv != nil {
			sctx, scancel := context.WithTimeout(context.Background(), eventsShutdownTimeout)
			srv.Shutdown(sctx)
			scancel()
		}
		<-served
		cancel()
		<-ran
	}, nil
}
