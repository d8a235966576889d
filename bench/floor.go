package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jacobsa/fuse/fuseops"
	"github.com/mount-s3/mount-s3/mount"
)

// The floors under the ratios. A row far below 1 may be the mount's own cost, or a cost no
// file system could avoid on this machine; these measure the second kind in the same run:
//
//   - the FUSE floor: a file system that only copies the object's bytes out of memory,
//     read like the seq read row. No FUSE file system, whatever it does, reads faster through
//     the page cache on this kernel and these CPUs;
//   - the cache disk: the --cache directory's block files read cold, which bounds the cached
//     re-read;
//   - the metadata floor (floormeta.go): the sync rows on imported entries on a core that
//     answers from memory.

// floorEnv, when set to "SIZE:SEED", makes the bench binary serve the FUSE floor file
// system at the directory given as its argument instead of running the bench.
const floorEnv = "MOUNT_S3_BENCH_FUSE_FLOOR"

// floorFile is the floor file system's one file, in its root.
const floorFile = "big"

const floorIno = fuseops.RootInodeID + 1

// floorPrefix starts the floor row's name; the table's notes find it by it.
const floorPrefix = "FUSE floor: memory-only seq read "

// floorNotes compares the mount with the floors, for the notes under the table.
func floorNotes(rows []row, e *env) []string {
	var notes []string
	byName := map[string]row{}
	for _, r := range rows {
		byName[r.name] = r
	}
	floor, seq := byName[floorPrefix+size(e.cfg.bigSize)], byName["seq read "+size(e.cfg.bigSize)]
	if floor.ours > 0 && floor.err == nil {
		notes = append(notes, fmt.Sprintf("FUSE floor: a file system that only copies from memory reads %.0f MB/s through the page cache here, %.2f of the raw SDK; no FUSE mount can reach a higher seq read ratio on this machine.", floor.ours, floor.ratio()))
		if seq.ours > 0 && seq.err == nil {
			notes = append(notes, fmt.Sprintf("the mount's seq read is %.2f of that floor; the floor's own gap to the SDK is the kernel's FUSE path (page-cache copies and a round trip per request), which no FUSE mount avoids.", seq.ours/floor.ours))
		}
	}
	// The sync rows on imported entries beside the same work on the floor file system.
	c := e.cfg
	for _, pair := range [][2]string{
		{fmt.Sprintf("sync: stat %d imported files (vs local dir)", c.smallFiles), fmt.Sprintf("FUSE floor: stat %d files (vs local dir)", c.smallFiles)},
		{fmt.Sprintf("sync: cat %d x %s imported, one after another (vs local dir)", c.smallFiles, size(int64(c.smallSize))), fmt.Sprintf("FUSE floor: cat %d x %s, one after another (vs local dir)", c.smallFiles, size(int64(c.smallSize)))},
		{fmt.Sprintf("sync: ls -l %d entries, imported (vs local dir)", c.dirEntries), fmt.Sprintf("FUSE floor: ls -l %d entries (vs local dir)", c.dirEntries)},
	} {
		ours, floor := byName[pair[0]], byName[pair[1]]
		if ours.ours > 0 && floor.ours > 0 && ours.err == nil && floor.err == nil {
			notes = append(notes, fmt.Sprintf("%s: %.3f s, %.2f of the FUSE floor's speed (%.3f s); the floor itself is %.2f of a local directory's.",
				strings.TrimSuffix(pair[0], " (vs local dir)"), ours.ours, floor.ours/ours.ours, floor.ours, floor.ratio()))
		}
	}
	if e.cacheDiskMBps > 0 {
		cache := byName["re-read "+size(e.cfg.bigSize)+" with --cache"]
		line := fmt.Sprintf("cache disk: the --cache dir's %d MiB of blocks read back cold, file by file, at %.0f MB/s; a cold cached re-read cannot beat its disk (the row got %.0f MB/s",
			e.cacheDiskBytes>>20, e.cacheDiskMBps, cache.ours)
		if seq.ours > 0 {
			line += fmt.Sprintf(", %.2fx the uncached seq read", cache.ours/seq.ours)
		}
		notes = append(notes, line+").")
	}
	return notes
}

// floorChild serves the floor file system if this process was started for it (by the
// bench binary or by its test binary, whose TestMain asks too) and reports whether it was.
func floorChild() bool {
	spec := os.Getenv(floorEnv)
	if spec == "" || len(os.Args) != 2 {
		return false
	}
	if err := serveFloor(spec, os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "bench: FUSE floor:", err)
		os.Exit(1)
	}
	return true
}

// serveFloor is the child process: it mounts the floor file system at dir, says "ready" on
// fd 3 as mount-s3 does, and serves until unmounted or signalled.
func serveFloor(spec, dir string) error {
	f := &floorFS{}
	if _, err := fmt.Sscanf(strings.ReplaceAll(spec, ":", " "), "%d %d %d %d %d", &f.size, &f.seed, &f.small, &f.smallSize, &f.many); err != nil {
		return fmt.Errorf("%s=%q: want SIZE:SEED:SMALL-FILES:SMALL-SIZE:ENTRIES (%v)", floorEnv, spec, err)
	}
	// The mount's own adapter, request loop and kernel settings (mount.Mount): the floor is
	// what mount-s3 would cost with a core that does nothing.
	mfs, err := mount.Mount(dir, f, mount.Options{FSName: "mount-s3-bench-floor", ReadOnly: true})
	if err != nil {
		return err
	}
	if ready := os.NewFile(3, "ready"); ready != nil {
		fmt.Fprintln(ready, "ready")
		ready.Close()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		syscall.Unmount(dir, 0)
	}()
	return mfs.Join(context.Background())
}

// fuseFloor times the seq read row's read on the floor file system.
func (e *env) fuseFloor(r *row) {
	r.unit = "MB/s"
	self, err := os.Executable()
	if err != nil {
		r.err = err
		return
	}
	dir, err := os.MkdirTemp("", "mount-s3-bench-floor-")
	if err != nil {
		r.err = err
		return
	}
	big := e.big()
	m, err := e.spawn(dir, self, []string{dir}, []string{fmt.Sprintf("%s=%d:%d:0:0:0", floorEnv, big.size, big.seed)})
	if err != nil {
		r.err = err
		return
	}
	e.dropCaches()
	t0 := time.Now()
	err = readSeq(filepath.Join(dir, floorFile), big)
	r.ours = mbps(big.size, time.Since(t0))
	r.rssKiB, r.cpuSecs = m.peakRSS(), m.cpu()
	if cerr := m.close(); err == nil {
		err = cerr
	}
	r.err = err
	v, err := e.timedGet(big)
	baseline(r, v, err)
}

// readTreeCold reads every regular file under dir once, in order, after dropping the page
// cache, and returns the bytes read and the rate.
func (e *env) readTreeCold(dir string) (int64, float64, error) {
	e.dropCaches()
	var total int64
	buf := make([]byte, 1<<20)
	t0 := time.Now()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		for {
			n, err := f.Read(buf)
			total += int64(n)
			if err != nil {
				return nil
			}
		}
	})
	return total, mbps(total, time.Since(t0)), err
}
