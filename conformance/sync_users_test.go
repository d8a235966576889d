package conformance

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// asUser runs a shell command as uid/gid on the mount and returns its combined output and
// whether it succeeded.
func asUser(t *testing.T, uid, gid uint32, dir, script string) (string, bool) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		out = []byte(err.Error())
	}
	return strings.TrimSpace(string(out)), err == nil
}

// With --allow-other, other users meet a local file system's rules on a sync mount (the
// kernel checks them against the mode and owner the mount reports): sticky directories,
// chmod and chown by non-owners, explicit times by non-owners, special files made by anyone
// (issue 17).
func TestSyncOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as other users")
	}
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, t.TempDir(), "--allow-other")
	// The test's temporary directories are private: let the other users reach the mount.
	require.NoError(t, os.Chmod(filepath.Dir(m.Dir), 0o755))
	require.NoError(t, os.Mkdir(m.Path("tmp"), 0o777))
	require.NoError(t, syscall.Chmod(m.Path("tmp"), 0o1777))
	const alice, bob = 65534, 65533

	out, ok := asUser(t, alice, alice, m.Path("tmp"), "echo mine > a && mkfifo p && ls -l a p")
	require.True(t, ok, out)
	require.Contains(t, out, "prw-r--r--")
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(m.Path("tmp/a"), &st))
	require.Equal(t, uint32(alice), st.Uid, "a new file belongs to its creator")

	for _, c := range []struct{ script, why string }{
		{"rm -f a", "unlink of another's file in a sticky directory"},
		{"mv a b", "rename of another's file in a sticky directory"},
		{"chmod 666 a", "chmod by a non-owner"},
		{"touch -d 2001-01-01 a", "explicit times by a non-owner"},
		{"echo x >> a", "write without permission"},
	} {
		out, ok := asUser(t, bob, bob, m.Path("tmp"), c.script)
		require.False(t, ok, "%s was allowed: %s", c.why, out)
	}
	out, ok = asUser(t, alice, alice, m.Path("tmp"), "chmod 600 a && chgrp 0 a")
	require.False(t, ok, "chgrp to a group the owner is not in: %s", out)
	out, ok = asUser(t, alice, alice, m.Path("tmp"), "chmod 4755 a && touch -d 2001-01-01 a && rm p && ls")
	require.True(t, ok, out)
	require.NoError(t, syscall.Stat(m.Path("tmp/a"), &st))
	require.Equal(t, uint32(0o4755), st.Mode&0o7777)
	require.Equal(t, int64(978307200), st.Mtim.Sec)

	// Linux clears set-user-ID when root gives the file away, and when another user writes.
	require.NoError(t, os.Chown(m.Path("tmp/a"), bob, bob))
	require.NoError(t, syscall.Stat(m.Path("tmp/a"), &st))
	require.Zero(t, st.Mode&0o4000, "chown clears set-user-ID")
	flush(t, m)
	requireBucketMatches(t, m, "tmp")
}
