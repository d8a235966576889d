package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/mount-s3/mount-s3/mount"
)

// checkInvariantsEnv, set to 1, makes the mount check its core's inode and handle tables
// after every operation (a debugging aid, slow on large trees; the conformance harness sets
// it for every test mount).
const checkInvariantsEnv = "MOUNT_S3_CHECK_INVARIANTS"

// invariantChecker observes every operation answered and stops the process at the first
// broken invariant, naming the operation after which it was found.
type invariantChecker struct {
	inner mount.Observer // the metrics, or nil
	core  interface{ CheckInvariants() error }
	log   *slog.Logger
}

// withInvariants returns obs, or under MOUNT_S3_CHECK_INVARIANTS=1 obs behind a checker of
// core's tables.
func withInvariants(obs mount.Observer, core mount.FileSystem, log *slog.Logger) mount.Observer {
	c, ok := core.(interface{ CheckInvariants() error })
	if os.Getenv(checkInvariantsEnv) != "1" || !ok {
		return obs
	}
	log.Info("checking the inode and handle tables after every operation", "env", checkInvariantsEnv)
	return &invariantChecker{inner: obs, core: c, log: log}
}

func (c *invariantChecker) FUSEOp(op string, d time.Duration, errno string) {
	if c.inner != nil {
		c.inner.FUSEOp(op, d, errno)
	}
	if err := c.core.CheckInvariants(); err != nil {
		c.log.Error("invariant broken", "after", op, "error", err.Error())
		panic(fmt.Sprintf("%s: invariant broken after %s: %v", checkInvariantsEnv, op, err))
	}
}

func (c *invariantChecker) FUSEBytes(n int, write bool) {
	if c.inner != nil {
		c.inner.FUSEBytes(n, write)
	}
}
