package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Salvage sets a damaged sync dir aside with every data file and names, in its report, the
// files whose changes had not reached the bucket; a fresh Open of the same dir then works.
func TestSalvageKeepsPendingFiles(t *testing.T) {
	for _, dbState := range []string{"readable", "unreadable"} {
		t.Run(dbState, func(t *testing.T) {
			l, dir := newLayer(t)
			writeFile(t, l, "pending", "not uploaded yet")
			require.NoError(t, l.Close())
			db := filepath.Join(dir, DBFile)
			if dbState == "unreadable" {
				require.NoError(t, os.WriteFile(db, []byte("this is not a bbolt database, not at all.............."), 0o600))
			}
			now := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
			res, err := Salvage(dir, now)
			require.NoError(t, err)
			require.Equal(t, dir+".broken-20261206T040000Z", res.Aside)
			require.Equal(t, dbState != "unreadable", res.DBReadable)
			require.Len(t, res.Pending, 1)
			b, err := os.ReadFile(res.Pending[0].Data)
			require.NoError(t, err)
			require.Equal(t, "not uploaded yet", string(b), "the data file is kept")
			report, err := os.ReadFile(filepath.Join(res.Aside, SalvageFile))
			require.NoError(t, err)
			require.Contains(t, string(report), res.Pending[0].Data)
			if res.DBReadable {
				require.Equal(t, "pending", res.Pending[0].Path)
				require.True(t, strings.Contains(string(report), "\t/pending"), "%s", report)
			}
			_, err = os.Stat(dir)
			require.True(t, os.IsNotExist(err), "the sync dir is set aside, not copied")
			l2, err := Open(dir, testOpts())
			require.NoError(t, err, "the next mount starts afresh")
			require.NoError(t, l2.Close())
		})
	}
}

// Salvage refuses a sync dir a mount is using.
func TestSalvageRefusesLockedDir(t *testing.T) {
	_, dir := newLayer(t)
	_, err := Salvage(dir, time.Now())
	require.ErrorIs(t, err, ErrLocked)
	_, err = os.Stat(dir)
	require.NoError(t, err, "nothing moved")
}
