package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/probe"
)

// probeTimeout bounds the conditional-write probe at start-up.
const probeTimeout = 30 * time.Second

// conditionsWarning is logged once when sync mode cannot rely on conditional writes.
const conditionsWarning = "the store ignores conditional writes (If-Match/If-None-Match); sync mode checks with a HEAD " +
	"just before each upload instead, which leaves a window of one request in which another writer's change can be overwritten"

// conditionalWrites reports whether sync mode can rely on the store's If-Match /
// If-None-Match (C3). It probes the store with a hidden object under prefix (impl/s3/probe), or a
// short-lived dot-file where the store refuses hidden names.
// When it cannot tell (a network or access error), it answers false: wrongly assuming the
// conditions work would overwrite other writers' versions without a conflict, while wrongly
// assuming they do not only costs a HEAD per upload and opens a window of one request. A false
// answer is logged once, with that window; the caller sets engine.Config.ConditionsUnsupported.
func conditionalWrites(ctx context.Context, store s3.Store, prefix string, logger *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	ok, key, err := probe.Probe(ctx, store, prefix)
	switch {
	case errors.Is(err, probe.ErrLeftBehind):
		// The verdict stands. The object is hidden from every mount (K3), unless the store
		// refused hidden keys and the probe used a visible dot-file (probe.FallbackKey).
		logger.Warn("the conditional-write probe object could not be deleted; delete it by hand", "key", key, "error", err.Error())
	case err != nil:
		logger.Warn("could not find out whether the store honours conditional writes; assuming it does not", "error", err.Error())
	}
	if ok {
		logger.Debug("the store honours conditional writes")
		return true
	}
	logger.Warn(conditionsWarning)
	return false
}
