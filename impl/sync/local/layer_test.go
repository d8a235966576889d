package local

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func TestFSIDCreatedOnceAndPersisted(t *testing.T) {
	l, _ := newLayer(t)
	id := l.FSID()
	require.Len(t, id, 16)
	l = reopen(t, l)
	require.Equal(t, id, l.FSID())
	other, _ := newLayer(t)
	require.NotEqual(t, id, other.FSID())
}

func TestSecondOpenIsRefused(t *testing.T) {
	l, dir := newLayer(t)
	_, err := Open(dir, testOpts())
	require.ErrorIs(t, err, ErrLocked)
	require.Contains(t, err.Error(), "locked by process")
	require.NoError(t, l.Close())
	l2, err := Open(dir, testOpts())
	require.NoError(t, err)
	l2.Close()
}

func TestOpenRefusesOtherBucketOrPrefix(t *testing.T) {
	l, dir := newLayer(t)
	require.NoError(t, l.Close())
	o := testOpts()
	o.Prefix = "other/"
	_, err := Open(dir, o)
	require.ErrorContains(t, err, "belongs to s3://bkt/pre/")
	o = testOpts()
	o.Prefix = "bad"
	_, err = Open(dir, o)
	require.Error(t, err)
}

func TestCorruptDatabaseRefusedWithRecoveryAdvice(t *testing.T) {
	l, dir := newLayer(t)
	writeFile(t, l, "keep", "precious")
	require.NoError(t, l.Close())
	db := filepath.Join(dir, DBFile)
	require.NoError(t, os.WriteFile(db, []byte("this is not a bbolt database, not at all.............."), 0o600))
	_, err := Open(dir, testOpts())
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "mount-s3 sync --recover "+dir)
	require.Contains(t, err.Error(), "imported afresh")
	ents, _ := os.ReadDir(filepath.Join(dir, DataDir))
	require.Len(t, ents, 1, "data files are kept")
	b, _ := os.ReadFile(filepath.Join(dir, DataDir, ents[0].Name()))
	require.Equal(t, "precious", string(b))
}

func TestMissingDatabaseWithDataFilesRefused(t *testing.T) {
	l, dir := newLayer(t)
	writeFile(t, l, "keep", "precious")
	require.NoError(t, l.Close())
	require.NoError(t, os.Remove(filepath.Join(dir, DBFile)))
	_, err := Open(dir, testOpts())
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "missing")
	_, err = os.Stat(filepath.Join(dir, DBFile))
	require.True(t, errors.Is(err, os.ErrNotExist), "no fresh database is made over the data")
}

func TestInvalidRecordRefused(t *testing.T) {
	l, dir := newLayer(t)
	writeFile(t, l, "f", "x")
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bNodes).Put(nodeKey("f"), []byte(`{"k":1,"s":{"Exists":true,"Deleted":true}}`))
	}))
	require.NoError(t, l.Close())
	_, err := Open(dir, testOpts())
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), `record "f"`)
}

func TestMissingDirtyDataFileRefused(t *testing.T) {
	l, dir := newLayer(t)
	writeFile(t, l, "f", "data")
	info, _ := l.Stat("f")
	require.NoError(t, l.Close())
	require.NoError(t, os.Remove(l.dataPath(info.ID)))
	_, err := Open(dir, testOpts())
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "/f")
}

func TestErrorsMatchErrno(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Stat("nope")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, err, syscall.ENOENT)
	require.NotErrorIs(t, err, syscall.EEXIST)
}

func TestENOSPCSurfacesAndKeepsEarlierData(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "old", "closed earlier")
	_, err := l.Create("new", 0o644, 0, 0)
	require.NoError(t, err)
	orig := writeAt
	writeAt = func(f *os.File, p []byte, off int64) (int, error) {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	defer func() { writeAt = orig }()
	_, err = l.WriteAt("new", []byte("x"), 0)
	require.ErrorIs(t, err, syscall.ENOSPC)
	writeAt = orig
	require.Equal(t, "closed earlier", readFile(t, l, "old"))
	require.Contains(t, dirtyPaths(t, l), "new")
	l = reopen(t, l)
	require.Equal(t, "closed earlier", readFile(t, l, "old"))
}
