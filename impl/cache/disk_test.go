package cache

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// oneBlockObjects puts n objects of exactly one block each and returns their ETags.
func oneBlockObjects(t *testing.T, src s3.Store, n int, bs int64) ([][]byte, []string) {
	var datas [][]byte
	var etags []string
	for i := 0; i < n; i++ {
		d := randomBytes(int(bs), int64(100+i))
		datas = append(datas, d)
		etags = append(etags, put(t, src, fmt.Sprintf("o%d", i), d))
	}
	return datas, etags
}

// fileSize is the size of the block file of a one-block object oN.
func fileSize(bs int64, etag string) int64 {
	f, _ := codec{bucket: "b", bs: bs}.encodeFile(blockID{key: "o0", etag: etag}, block{data: make([]byte, bs), size: bs})
	return int64(len(f))
}

func blockPath(c *DiskCache, key, etag string, index int64) string {
	return c.disk.path(c.disk.name(blockID{key: key, etag: etag, index: index}))
}

// dirBytes sums the sizes of the files under the cache's blocks directory.
func dirBytes(t *testing.T, dir string) (total int64, files int) {
	err := filepath.WalkDir(filepath.Join(dir, blocksDir), func(_ string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		info, err := de.Info()
		if err == nil {
			total += info.Size()
			files++
		}
		return err
	})
	require.NoError(t, err)
	return total, files
}

func TestEvictionKeepsSizeAndEvictsLeastRecentlyUsed(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	const bs = 4 * KiB
	datas, etags := oneBlockObjects(t, src, 12, bs)
	per := fileSize(bs, etags[0])
	dir := t.TempDir()
	c, inner := newDisk(t, src, DiskConfig{Dir: dir, MaxSize: 5*per + per/2, BlockSize: bs})
	key := func(i int) string { return fmt.Sprintf("o%d", i) }
	readObj := func(i int) { require.Equal(t, datas[i], mustRead(t, c, key(i), 0, -1, etags[i])) }

	for i := 0; i < 5; i++ {
		readObj(i)
	}
	require.Equal(t, 5, inner.Calls("Get"))
	readObj(0) // o0 is now the most recently used; o1 the least
	require.Equal(t, 5, inner.Calls("Get"))
	readObj(5)
	require.Equal(t, 6, inner.Calls("Get"))
	st := c.Stats()
	require.Equal(t, int64(1), st.Evictions)
	require.Equal(t, int64(5), st.Blocks)
	require.LessOrEqual(t, st.Bytes, st.MaxBytes)

	readObj(0)
	readObj(2)
	require.Equal(t, 6, inner.Calls("Get"), "o0 and o2 stayed")
	readObj(1)
	require.Equal(t, 7, inner.Calls("Get"), "o1 was evicted")

	for round := 0; round < 3; round++ {
		for i := range datas {
			readObj(i)
			total, files := dirBytes(t, dir)
			require.LessOrEqual(t, total, c.Stats().MaxBytes)
			require.LessOrEqual(t, files, 5)
		}
	}
	total, _ := dirBytes(t, dir)
	require.Equal(t, total, c.Stats().Bytes, "the index accounts for exactly the files")
}

func TestBlockLargerThanCacheIsServedNotStored(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	data := randomBytes(64*KiB, 8)
	etag := put(t, src, "obj", data)
	c, inner := newDisk(t, src, DiskConfig{MaxSize: 10 * KiB, BlockSize: 16 * KiB})
	require.Equal(t, data, mustRead(t, c, "obj", 0, -1, etag))
	require.Equal(t, data, mustRead(t, c, "obj", 0, -1, etag))
	require.Equal(t, 2, inner.Calls("Get"))
	require.Zero(t, c.Stats().Bytes)
}

func TestCorruptBlockIsDetectedAndRefetched(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	const bs = 4 * KiB
	datas, etags := oneBlockObjects(t, src, 2, bs)
	damage := map[string]func(t *testing.T, c *DiskCache, path string){
		"flip a data byte": func(t *testing.T, _ *DiskCache, path string) { flip(t, path, -100) },
		"flip the size":    func(t *testing.T, _ *DiskCache, path string) { flip(t, path, 28) },
		"flip the crc":     func(t *testing.T, _ *DiskCache, path string) { flip(t, path, -1) },
		"truncate":         func(t *testing.T, _ *DiskCache, path string) { truncate(t, path, -10) },
		"empty":            func(t *testing.T, _ *DiskCache, path string) { truncate(t, path, 0) },
		"deleted":          func(t *testing.T, _ *DiskCache, path string) { require.NoError(t, os.Remove(path)) },
		"too large":        func(t *testing.T, _ *DiskCache, path string) { truncate(t, path, 1<<30) },
		"another block": func(t *testing.T, c *DiskCache, path string) {
			// What a hash collision would look like: a valid block of another object.
			other, err := os.ReadFile(blockPath(c, "o1", etags[1], 0))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, other, 0o600))
		},
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			c, inner := newDisk(t, src, DiskConfig{MaxSize: MiB, BlockSize: bs})
			require.Equal(t, datas[1], mustRead(t, c, "o1", 0, -1, etags[1]))
			require.Equal(t, datas[0], mustRead(t, c, "o0", 0, -1, etags[0]))
			require.Equal(t, 2, inner.Calls("Get"))
			fn(t, c, blockPath(c, "o0", etags[0], 0))

			require.Equal(t, datas[0], mustRead(t, c, "o0", 0, -1, etags[0]), "a damaged block is never served")
			require.Equal(t, 3, inner.Calls("Get"), "it is fetched again")
			if name != "deleted" {
				require.Equal(t, int64(1), c.Stats().Corrupt)
			}
			require.Equal(t, datas[0], mustRead(t, c, "o0", 0, -1, etags[0]))
			require.Equal(t, 3, inner.Calls("Get"), "and stored again")
			require.Equal(t, int64(2), c.Stats().Blocks)
		})
	}
}

func flip(t *testing.T, path string, at int) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	if at < 0 {
		at += len(b)
	}
	b[at] ^= 0x40
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

func truncate(t *testing.T, path string, to int64) {
	if to < 0 {
		info, err := os.Stat(path)
		require.NoError(t, err)
		to += info.Size()
	}
	require.NoError(t, os.Truncate(path, to))
}

func TestCacheSurvivesRestart(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	data := randomBytes(100*KiB+1, 9)
	etag := put(t, src, "big", data)
	const bs = 8 * KiB
	_, etags := oneBlockObjects(t, src, 4, bs)
	dir := t.TempDir()

	c1, inner1 := newDisk(t, src, DiskConfig{Dir: dir, MaxSize: MiB, BlockSize: bs})
	require.Equal(t, data, mustRead(t, c1, "big", 0, -1, etag))
	for i, e := range etags {
		mustRead(t, c1, fmt.Sprintf("o%d", i), 0, -1, e)
	}
	require.Equal(t, 5, inner1.Calls("Get"))
	_, err := NewDisk(src, DiskConfig{Dir: dir, MaxSize: MiB, BlockSize: bs})
	require.ErrorContains(t, err, "in use", "one cache per directory")
	require.NoError(t, c1.Close())
	blocks := c1.Stats().Blocks
	require.Equal(t, int64(13+4), blocks)

	// A crash's leftover is removed; blocks are indexed again and served without a GET.
	tmp := filepath.Join(dir, blocksDir, "00", tmpPrefix+"123")
	require.NoError(t, os.MkdirAll(filepath.Dir(tmp), 0o700))
	require.NoError(t, os.WriteFile(tmp, []byte("half a block"), 0o600))
	c2, inner2 := newDisk(t, src, DiskConfig{Dir: dir, MaxSize: MiB, BlockSize: bs})
	require.NoFileExists(t, tmp)
	require.Equal(t, blocks, c2.Stats().Blocks)
	require.Equal(t, data, mustRead(t, c2, "big", 0, -1, etag))
	require.Equal(t, data[50_000:60_000], mustRead(t, c2, "big", 50_000, 10_000, etag))
	require.Equal(t, 0, inner2.Calls("Get"))
	_, _, err = read(c2, "big", int64(len(data))+5, 1, etag)
	require.ErrorIs(t, err, s3.ErrInvalidRange)
	require.Equal(t, 0, inner2.Calls("Get"), "EOF is known from the cached last block")
	require.NoError(t, c2.Close())

	// Recency survives too (as mtimes): with a smaller limit the oldest go first. "big" is
	// the oldest, then o2.
	base := time.Now().Add(-time.Hour)
	require.NoError(t, filepath.WalkDir(filepath.Join(dir, blocksDir), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		return os.Chtimes(p, base.Add(-time.Hour), base.Add(-time.Hour))
	}))
	for i, e := range etags {
		at := base.Add(time.Duration(i) * time.Minute)
		if i == 2 {
			at = base.Add(-time.Minute)
		}
		require.NoError(t, os.Chtimes(blockPath(c2, fmt.Sprintf("o%d", i), e, 0), at, at))
	}
	per := fileSize(bs, etags[0])
	c3, inner3 := newDisk(t, src, DiskConfig{Dir: dir, MaxSize: 3*per + per/2, BlockSize: bs})
	require.LessOrEqual(t, c3.Stats().Bytes, c3.Stats().MaxBytes)
	for _, i := range []int{0, 1, 3} {
		mustRead(t, c3, fmt.Sprintf("o%d", i), 0, -1, etags[i])
	}
	require.Equal(t, 0, inner3.Calls("Get"), "the three most recent blocks were kept")
	mustRead(t, c3, "o2", 0, -1, etags[2])
	require.Equal(t, 1, inner3.Calls("Get"))
}

func TestConfig(t *testing.T) {
	srv := startServer(t)
	src := sdkStore(t, srv, "b")
	c, _ := newDisk(t, src, DiskConfig{})
	st := c.Stats()
	require.Positive(t, st.MaxBytes)
	require.LessOrEqual(t, st.MaxBytes, int64(DefaultMaxSizeCap))
	require.Equal(t, int64(DefaultBlockSize), c.disk.bs)

	_, err := NewDisk(src, DiskConfig{})
	require.Error(t, err)
	_, err = NewDisk(src, DiskConfig{Dir: t.TempDir(), MaxSize: -1})
	require.Error(t, err)
}
