package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/probe/probetest"
)

type downStore struct{ s3.Store }

func (downStore) Put(context.Context, string, io.ReadSeeker, int64, s3.WriteOptions) (s3.ObjectInfo, error) {
	return s3.ObjectInfo{}, errors.New("dial tcp: connection refused")
}

func TestConditionalWrites(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	_, honours := probetest.StartServer(t, nil)
	require.True(t, conditionalWrites(context.Background(), honours, "p/", logger))
	require.Empty(t, logs.String())

	var strip probetest.StripConditions
	_, ignores := probetest.StartServer(t, strip.Middleware)
	require.False(t, conditionalWrites(context.Background(), ignores, "p/", logger))
	require.Equal(t, 1, strings.Count(logs.String(), "leaves a window of one request"), logs.String())

	logs.Reset()
	require.False(t, conditionalWrites(context.Background(), downStore{honours}, "", logger), "unknown: assume they do not work")
	require.Contains(t, logs.String(), "assuming it does not")
	require.Contains(t, logs.String(), "leaves a window of one request")

	// A store with MinIO's key rules refuses the hidden key; the probe's fallback still finds
	// the conditions honoured, and nothing is logged.
	logs.Reset()
	var rules probetest.FileKeyRules
	_, fileKeys := probetest.StartServer(t, rules.Middleware)
	require.True(t, conditionalWrites(context.Background(), fileKeys, "p/", logger))
	require.Empty(t, logs.String())
	require.Positive(t, rules.Refused.Load())
}
