package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Log files of --log-directory rotate at logFileMaxMiB, keeping logFileBackups older ones.
const (
	logFileMaxMiB  = 100
	logFileBackups = 5
)

// logEnvVars filter the log: MOUNT_S3_LOG, or Mountpoint's MOUNTPOINT_LOG, as "debug", "info",
// "warn", "error" or "off", or Mountpoint's form "warn,mountpoint_s3=debug" (the level for
// mountpoint_s3 or mount_s3 wins over the default).
var logEnvVars = []string{"MOUNT_S3_LOG", "MOUNTPOINT_LOG"}

// newLogger returns the process logger and the writer under it: stderr in the foreground, a
// rotated file per mount in --log-directory, syslog for a background mount (as Mountpoint;
// the journal keeps it), nothing with --no-log.
func newLogger(o *options) (*slog.Logger, io.Writer, func(), error) {
	level, off, err := logLevel(o)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	discard := slog.New(slog.NewTextHandler(io.Discard, opts))
	switch {
	case o.noLog || off:
		return discard, io.Discard, func() {}, nil
	case o.logDirectory != "":
		if err := os.MkdirAll(o.logDirectory, 0o755); err != nil {
			return nil, nil, nil, fmt.Errorf("--log-directory %s: %w", o.logDirectory, err)
		}
		name := filepath.Join(o.logDirectory, "mount-s3-"+time.Now().UTC().Format("2006-01-02T15-04-05Z")+fmt.Sprintf("-%d.log", os.Getpid()))
		f, err := os.OpenFile(name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--log-directory %s: %w", o.logDirectory, err)
		}
		f.Close()
		w := &lumberjack.Logger{Filename: name, MaxSize: logFileMaxMiB, MaxBackups: logFileBackups}
		return slog.New(slog.NewTextHandler(w, opts)), w, func() { w.Close() }, nil
	case o.foreground:
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), os.Stderr, func() {}, nil
	}
	sl, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "mount-s3")
	if err != nil {
		// No syslog daemon (a container): there is nowhere to write without being asked.
		return discard, io.Discard, func() {}, nil
	}
	h := &syslogHandler{w: sl, opts: opts}
	return slog.New(h), sl, func() { sl.Close() }, nil
}

// logLevel reads --debug and the filter variables; off is true for "off".
func logLevel(o *options) (slog.Level, bool, error) {
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	for _, name := range logEnvVars {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			continue
		}
		pick := ""
		for _, item := range strings.Split(v, ",") {
			target, lvl, scoped := strings.Cut(strings.TrimSpace(item), "=")
			switch {
			case !scoped:
				if pick == "" {
					pick = target
				}
			case target == "mountpoint_s3" || target == "mount_s3" || target == "mount-s3":
				pick = lvl
			}
		}
		if pick == "" {
			break
		}
		switch strings.ToLower(pick) {
		case "trace", "debug":
			return slog.LevelDebug, false, nil
		case "info":
			return slog.LevelInfo, false, nil
		case "warn", "warning":
			return slog.LevelWarn, false, nil
		case "error":
			return slog.LevelError, false, nil
		case "off":
			return level, true, nil
		default:
			return level, false, usagef("invalid value '%s' for %s: expected trace, debug, info, warn, error or off", v, name)
		}
	}
	return level, false, nil
}

// syslogHandler formats records as text and sends each with the syslog severity of its level.
type syslogHandler struct {
	w     *syslog.Writer
	opts  *slog.HandlerOptions
	attrs []slog.Attr
	group string
}

func (h *syslogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.opts.Level.Level()
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	var buf bytes.Buffer
	inner := slog.Handler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: h.opts.Level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{} // syslog stamps the time and carries the severity
			}
			return a
		}}))
	if len(h.attrs) > 0 {
		inner = inner.WithAttrs(h.attrs)
	}
	if h.group != "" {
		inner = inner.WithGroup(h.group)
	}
	if err := inner.Handle(ctx, r); err != nil {
		return err
	}
	line := strings.TrimRight(buf.String(), "\n")
	switch {
	case r.Level >= slog.LevelError:
		return h.w.Err(line)
	case r.Level >= slog.LevelWarn:
		return h.w.Warning(line)
	case r.Level >= slog.LevelInfo:
		return h.w.Info(line)
	}
	return h.w.Debug(line)
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = name
	return &c
}
