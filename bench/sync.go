package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Sync mode's rows (issue 6): the same work on a sync mount and on a plain directory of the
// disk that holds the sync dir. Their baseline column is that local directory, not the SDK.

func (e *env) syncWorkloads() []workload {
	c := e.cfg
	return []workload{
		one(fmt.Sprintf("sync: create %d x %s, %d writers (vs local dir)", c.smallFiles, size(int64(c.smallSize)), c.workers), e.syncCreate),
		one(fmt.Sprintf("sync: ls -l %d entries, fresh sync dir (vs local dir)", c.dirEntries), func(r *row) { e.syncList(r, fresh) }),
		one(fmt.Sprintf("sync: ls -l %d entries, import running (vs local dir)", c.dirEntries), func(r *row) { e.syncList(r, importing) }),
		one(fmt.Sprintf("sync: ls -l %d entries, imported (vs local dir)", c.dirEntries), func(r *row) { e.syncList(r, settled) }),
		{"sync: imported small files (vs local dir)", e.syncImported},
		{"FUSE floor: metadata of imported entries (vs local dir)", e.fuseFloorMeta},
		{"sync: data path (vs local dir)", e.syncData},
	}
}

// syncDirs makes a sync dir and a local directory side by side in one temporary directory,
// so that both rows' sides use the same disk.
func syncDirs() (syncDir, localDir string, cleanup func(), err error) {
	base, err := os.MkdirTemp("", "mount-s3-bench-sync-")
	if err != nil {
		return "", "", nil, err
	}
	syncDir, localDir = filepath.Join(base, "sync"), filepath.Join(base, "local")
	if err := os.Mkdir(localDir, 0o755); err != nil {
		os.RemoveAll(base)
		return "", "", nil, err
	}
	return syncDir, localDir, func() { os.RemoveAll(base) }, nil
}

// createFiles writes n small files into dir with the given number of writers, as the
// streaming create row does, and returns files per second. Each close returns only once the
// file is durable in the sync dir (Y4); the local side closes without fsync, as programs do.
func (e *env) createFiles(dir string, n int) (float64, error) {
	t0 := time.Now()
	err := parallel(n, e.cfg.workers, func(i int) error {
		buf := make([]byte, e.cfg.smallSize)
		fill(buf, smallSeed(i), 0)
		f, err := os.OpenFile(filepath.Join(dir, smallName(i)), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = f.Write(buf)
		return errors.Join(err, f.Close())
	})
	return float64(n) / time.Since(t0).Seconds(), err
}

func (e *env) syncCreate(r *row) {
	r.unit = "files/s"
	syncDir, localDir, cleanup, err := syncDirs()
	if err != nil {
		r.err = err
		return
	}
	defer cleanup()
	n := e.cfg.smallFiles
	e.onMount(r, []string{"--sync-dir", syncDir}, func(m *mounted) error {
		if err := os.Mkdir(m.path("w-sync"), 0o755); err != nil {
			return err
		}
		var err error
		r.ours, err = e.createFiles(m.path("w-sync"), n)
		if err == nil {
			err = checkFiles(m.path("w-sync"), n, e.cfg.smallSize)
		}
		return err
	})
	v, err := e.createFiles(localDir, n)
	baseline(r, v, err)
}

// When a sync-mode ls -l row runs, relative to the directory's import.
type importStage int

const (
	fresh     importStage = iota // on a fresh sync dir: the import's listing (Y1) and HEADs (Y3) counted
	importing                    // right after the listing that imported the names, while the background import of data and attributes runs
	settled                      // after the background import ended (every seeded file is under the import threshold)
)

// syncList times `ls -l` of the seeded directory at stage against `ls -l` of a local
// directory with as many empty files.
func (e *env) syncList(r *row, stage importStage) {
	r.unit = "s"
	syncDir, localDir, cleanup, err := syncDirs()
	if err != nil {
		r.err = err
		return
	}
	defer cleanup()
	e.onMount(r, []string{"--sync-dir", syncDir}, func(m *mounted) error {
		if stage == fresh {
			// A fresh sync dir: the import's listing and the attributes' HEADs are counted;
			// the fewest round trips are its listing's pages and one HEAD, were every HEAD
			// sent at once.
			r.floor = pages(e.cfg.dirEntries)*e.listLat.Seconds() + e.headLat.Seconds()
			var err error
			r.ours, err = e.lsl(m.path(listDir))
			return err
		}
		if _, err := os.ReadDir(m.path(listDir)); err != nil { // the import, not timed
			return err
		}
		if stage == settled {
			if err := settle(syncDir, e.cfg.dirEntries); err != nil {
				return err
			}
		}
		var err error
		r.ours, err = e.lsl(m.path(listDir))
		return err
	})
	for i := 0; i < e.cfg.dirEntries; i++ {
		f, err := os.Create(filepath.Join(localDir, fmt.Sprintf("f%06d", i)))
		if err != nil {
			baseline(r, 0, err)
			return
		}
		f.Close()
	}
	e.dropCaches()
	v, err := e.lsl(localDir)
	baseline(r, v, err)
}

// checkFiles checks that dir holds n files of size bytes with the contents createFiles wrote.
func checkFiles(dir string, n, size int) error {
	for i := 0; i < n; i++ {
		b, err := os.ReadFile(filepath.Join(dir, smallName(i)))
		if err != nil {
			return err
		}
		if len(b) != size || !same(b, smallSeed(i), 0) {
			return fmt.Errorf("%s: wrong contents after the create", smallName(i))
		}
	}
	return nil
}

// syncData: the data path of files already local (issue 16): a sequential write ended by
// fsync, a cold sequential read, random 4 KiB reads, and random 4 KiB writes with an fsync
// every 32, on one file through a sync mount and on the same work in a local directory of
// the same disk. The sync mount's write-back delay is an hour, so its uploads do not compete
// with the rows (a write-back's cost is the bucket's, not the data path's), and its root is
// imported before the rows start (a LIST at first access, not the data path either).
func (e *env) syncData() []row {
	n := e.cfg.multiSize
	rows := []row{
		{name: fmt.Sprintf("sync: seq write %s + fsync (vs local dir)", size(n)), unit: "MB/s"},
		{name: fmt.Sprintf("sync: seq read %s, cold (vs local dir)", size(n)), unit: "MB/s"},
		{name: "sync: rand 4 KiB read (vs local dir)", unit: "ops/s"},
		{name: "sync: rand 4 KiB write, fsync every 32 (vs local dir)", unit: "ops/s"},
	}
	return e.syncVsLocal(rows, []string{"--write-back-delay", "1h"},
		func(m *mounted, _ string) ([]float64, error) {
			// The first access to a directory imports it (one LIST): not the data path.
			if _, err := os.ReadDir(m.path("")); err != nil {
				return nil, err
			}
			figs, err := e.dataPath(m.path("data-path"), n)
			return figs[:], err
		},
		func(localDir string) ([]float64, error) {
			figs, err := e.dataPath(filepath.Join(localDir, "data-path"), n)
			return figs[:], err
		})
}

// syncVsLocal runs rows on a fresh sync mount (with the extra mount arguments) and then on a
// local directory of the same disk: ours and local each give one figure per row, in order.
// The mount's peak RSS, CPU and requests go on the rows, its failure on every row.
func (e *env) syncVsLocal(rows []row, extra []string, ours func(m *mounted, syncDir string) ([]float64, error), local func(localDir string) ([]float64, error)) []row {
	syncDir, localDir, cleanup, err := syncDirs()
	if err != nil {
		rows[0].err = err
		return rows
	}
	defer cleanup()
	var first row
	e.onMount(&first, append([]string{"--sync-dir", syncDir}, extra...), func(m *mounted) error {
		figs, err := ours(m, syncDir)
		for i := range figs {
			rows[i].ours = figs[i]
		}
		rows[len(rows)-1].reqs, rows[len(rows)-1].cpuSecs = e.reqSnap(), m.cpu()
		return err
	})
	for i := range rows {
		rows[i].rssKiB, rows[i].err = first.rssKiB, first.err
	}
	figs, err := local(localDir)
	for i := range rows {
		v := 0.0
		if i < len(figs) {
			v = figs[i]
		}
		baseline(&rows[i], v, err)
	}
	return rows
}

// dataPath runs the four data-path steps on path, a new file of n bytes, and returns their
// figures in the rows' order; it stops at the first error.
func (e *env) dataPath(path string, n int64) (figs [4]float64, err error) {
	const seed = 11
	buf := make([]byte, 1<<20)
	t0 := time.Now()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o644)
	if err != nil {
		return figs, err
	}
	defer f.Close()
	for off := int64(0); off < n && err == nil; off += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), n-off)]
		fill(b, seed, off)
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return figs, fmt.Errorf("seq write: %w", err)
	}
	figs[0] = mbps(n, time.Since(t0))

	e.dropCaches()
	t0 = time.Now()
	if err := readSeq(path, obj{path, seed, n}); err != nil {
		return figs, fmt.Errorf("seq read: %w", err)
	}
	figs[1] = mbps(n, time.Since(t0))

	// Random I/O as fio does it: POSIX_FADV_RANDOM, so that readahead does not turn a 4 KiB
	// read into a larger one.
	syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, 1 /* POSIX_FADV_RANDOM */, 0, 0)
	e.dropCaches()
	page := make([]byte, 4096)
	ops, deadline := 0, time.Now().Add(e.cfg.randDur)
	t0 = time.Now()
	for ; time.Now().Before(deadline); ops++ {
		off := rand.Int64N(n/4096) * 4096
		if k, err := f.ReadAt(page, off); err != nil || k != len(page) {
			return figs, fmt.Errorf("rand read @%d: %d bytes, %v", off, k, err)
		}
		if !same(page, seed, off) {
			return figs, fmt.Errorf("rand read @%d: %w", off, errMismatch)
		}
	}
	figs[2] = float64(ops) / time.Since(t0).Seconds()

	ops, deadline = 0, time.Now().Add(e.cfg.randDur)
	t0 = time.Now()
	for ; time.Now().Before(deadline) || ops%32 != 0; ops++ {
		off := rand.Int64N(n/4096) * 4096
		fill(page, seed, off) // the same bytes: the file stays checkable
		if _, err := f.WriteAt(page, off); err != nil {
			return figs, fmt.Errorf("rand write @%d: %w", off, err)
		}
		if ops%32 == 31 {
			if err := f.Sync(); err != nil {
				return figs, fmt.Errorf("rand write fsync: %w", err)
			}
		}
	}
	figs[3] = float64(ops) / time.Since(t0).Seconds()
	return figs, nil
}

// settle waits until the sync dir holds the data of n files: the background import of a
// directory of small files has ended.
func settle(syncDir string, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		entries, err := os.ReadDir(filepath.Join(syncDir, "data"))
		if err != nil {
			return err
		}
		if len(entries) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("background import: %d of %d files after 2 minutes", len(entries), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncImported: once a directory of small files is imported (names, attributes and data
// local), a stat of each and a cat of each, one after another, against the same files in a
// local directory with a cold page cache on both sides (issue 16: they must not cost more
// than twice the local figure, nor wait behind the import's requests and commits).
func (e *env) syncImported() []row {
	n := e.cfg.smallFiles
	rows := []row{
		{name: fmt.Sprintf("sync: stat %d imported files (vs local dir)", n), unit: "s"},
		{name: fmt.Sprintf("sync: cat %d x %s imported, one after another (vs local dir)", n, size(int64(e.cfg.smallSize))), unit: "s"},
	}
	return e.syncVsLocal(rows, nil,
		func(m *mounted, syncDir string) ([]float64, error) {
			if _, err := os.ReadDir(m.path(smallDir)); err != nil { // the import, not timed
				return nil, err
			}
			if err := settle(syncDir, n); err != nil {
				return nil, err
			}
			e.dropCaches()
			figs, err := e.statCat(m.path(smallDir), n)
			return figs[:], err
		},
		func(localDir string) ([]float64, error) {
			buf := make([]byte, e.cfg.smallSize)
			for i := 0; i < n; i++ {
				fill(buf, smallSeed(i), 0)
				if err := os.WriteFile(filepath.Join(localDir, smallName(i)), buf, 0o644); err != nil {
					return nil, err
				}
			}
			e.dropCaches()
			figs, err := e.statCat(localDir+"/", n)
			return figs[:], err
		})
}

// statCat times an lstat of each of the n small files in dir, then a read of each, checking
// the bytes; the seconds each took.
func (e *env) statCat(dir string, n int) (secs [2]float64, err error) {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		fi, err := os.Lstat(filepath.Join(dir, smallName(i)))
		if err != nil {
			return secs, err
		}
		if fi.Size() != int64(e.cfg.smallSize) {
			return secs, fmt.Errorf("%s: size %d, want %d", smallName(i), fi.Size(), e.cfg.smallSize)
		}
	}
	secs[0] = time.Since(t0).Seconds()
	t0 = time.Now()
	for i := 0; i < n; i++ {
		b, err := os.ReadFile(filepath.Join(dir, smallName(i)))
		if err != nil {
			return secs, err
		}
		if len(b) != e.cfg.smallSize || !same(b, smallSeed(i), 0) {
			return secs, fmt.Errorf("%s: %d bytes: %w", smallName(i), len(b), errMismatch)
		}
	}
	secs[1] = time.Since(t0).Seconds()
	return secs, nil
}
