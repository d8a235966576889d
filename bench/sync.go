package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Sync mode's rows (issue 6): the same work on a sync mount and on a plain directory of the
// disk that holds the sync dir. Their baseline column is that local directory, not the SDK.

func (e *env) syncWorkloads() []workload {
	c := e.cfg
	return []workload{
		one(fmt.Sprintf("sync: create %d x %s, %d writers (vs local dir)", c.smallFiles, size(int64(c.smallSize)), c.workers), e.syncCreate),
		one(fmt.Sprintf("sync: ls -l %d entries, importing (vs local dir)", c.dirEntries), func(r *row) { e.syncList(r, false) }),
		one(fmt.Sprintf("sync: ls -l %d entries, imported (vs local dir)", c.dirEntries), func(r *row) { e.syncList(r, true) }),
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

// syncList lists the seeded directory once to import it (Y1), then times `ls -l` of it,
// against `ls -l` of a local directory with as many empty files. The listing imports the
// names at once and the small files' data in the background: settled waits for that to end
// (every seeded file is under the import threshold), otherwise ls runs alongside it.
func (e *env) syncList(r *row, settled bool) {
	r.unit = "s"
	syncDir, localDir, cleanup, err := syncDirs()
	if err != nil {
		r.err = err
		return
	}
	defer cleanup()
	e.onMount(r, []string{"--sync-dir", syncDir}, func(m *mounted) error {
		if _, err := os.ReadDir(m.path(listDir)); err != nil { // the import, not timed
			return err
		}
		if settled {
			deadline := time.Now().Add(2 * time.Minute)
			for {
				entries, err := os.ReadDir(filepath.Join(syncDir, "data"))
				if err != nil {
					return err
				}
				if len(entries) >= e.cfg.dirEntries {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("background import: %d of %d files after 2 minutes", len(entries), e.cfg.dirEntries)
				}
				time.Sleep(100 * time.Millisecond)
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
