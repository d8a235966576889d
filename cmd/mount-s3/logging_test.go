package main

import (
	"log/slog"
	"testing"
)

// MOUNT_S3_LOG and Mountpoint's MOUNTPOINT_LOG set the level, in either form.
func TestLogLevelFromEnvironment(t *testing.T) {
	for _, c := range []struct {
		env, value string
		debug      bool
		want       slog.Level
		off        bool
		bad        bool
	}{
		{"", "", false, slog.LevelInfo, false, false},
		{"", "", true, slog.LevelDebug, false, false},
		{"MOUNT_S3_LOG", "warn", false, slog.LevelWarn, false, false},
		{"MOUNT_S3_LOG", "off", false, slog.LevelInfo, true, false},
		{"MOUNTPOINT_LOG", "trace", false, slog.LevelDebug, false, false},
		{"MOUNTPOINT_LOG", "warn,mountpoint_s3=debug,awscrt=off", false, slog.LevelDebug, false, false},
		{"MOUNTPOINT_LOG", "error,awscrt=debug", false, slog.LevelError, false, false},
		{"MOUNT_S3_LOG", "loud", false, slog.LevelInfo, false, true},
	} {
		for _, name := range logEnvVars {
			t.Setenv(name, "")
		}
		if c.env != "" {
			t.Setenv(c.env, c.value)
		}
		got, off, err := logLevel(&options{debug: c.debug})
		if (err != nil) != c.bad || got != c.want || off != c.off {
			t.Errorf("%s=%q --debug=%v: level %v off %v err %v; want %v off %v bad %v", c.env, c.value, c.debug, got, off, err, c.want, c.off, c.bad)
		}
	}
}
