package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The mount side of every row: plain system calls on files of a fresh mount, the way cat,
// dd, a database and ls use a file system.

// workload produces one or more rows; name is for progress output.
type workload struct {
	name string
	fn   func() []row
}

func one(name string, fn func(r *row)) workload {
	return workload{name, func() []row { r := row{name: name}; fn(&r); return []row{r} }}
}

func (e *env) workloads() []workload {
	c := e.cfg
	ws := []workload{
		one("seq read "+size(c.bigSize), func(r *row) { e.seqRead(r, 0) }),
		one("seq read "+size(c.bigSize)+", O_DIRECT", func(r *row) { e.seqRead(r, syscall.O_DIRECT) }),
		one(fmt.Sprintf("%d x %s concurrent seq read", c.readers, size(c.multiSize)), e.multiRead),
		one(floorPrefix+size(c.bigSize), e.fuseFloor),
	}
	for _, t := range c.randThreads {
		ws = append(ws, one(fmt.Sprintf("rand 4 KiB read, %d thread(s)", t), func(r *row) { e.randRead(r, t) }))
	}
	ws = append(ws,
		one(fmt.Sprintf("seq write %s incl. close", size(c.bigSize)), e.seqWrite),
		one(fmt.Sprintf("create %d x %s, %d writers", c.smallFiles, size(int64(c.smallSize)), c.workers), e.createSmall),
		one(fmt.Sprintf("read %d x %s, %d readers", c.smallFiles, size(int64(c.smallSize)), c.workers), e.readSmall),
		workload{fmt.Sprintf("ls -l %d entries", c.dirEntries), e.listDir},
	)
	ws = append(ws, e.nameWorkloads()...)
	ws = append(ws, one(fmt.Sprintf("re-read %s with --cache", size(c.bigSize)), e.cacheReread))
	return append(ws, e.syncWorkloads()...)
}

// onMount runs body on a fresh mount with a cold page cache and records the mount's peak
// RSS and the first error of body, the unmount or the process exit.
func (e *env) onMount(r *row, extra []string, body func(m *mounted) error) {
	m, err := e.mount(extra...)
	if err != nil {
		r.err = err
		return
	}
	e.dropCaches()
	e.reqSnap()
	err = body(m)
	r.rssKiB, r.cpuSecs = m.peakRSS(), m.cpu()
	if r.reqs == "" {
		r.reqs = e.reqSnap()
	}
	if cerr := m.close(); err == nil {
		err = cerr
	}
	if err != nil && r.err == nil {
		r.err = err
	}
}

// baseline records the raw SDK's figure, or its failure if the mount side did not fail.
func baseline(r *row, v float64, err error) {
	r.base = v
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("raw SDK: %w", err)
	}
}

// readSeq reads o's file like cat: read(2) with a 1 MiB buffer to EOF, checking the bytes.
func readSeq(path string, o obj) error { return readSeqFlags(path, o, 0) }

// readSeqFlags is readSeq with extra open flags (O_DIRECT: the kernel sends each read(2) to
// the mount as it is, without page-cache readahead).
func readSeqFlags(path string, o obj, flags int) error {
	f, err := os.OpenFile(path, os.O_RDONLY|flags, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	off := int64(0)
	for {
		n, err := f.Read(buf)
		if !same(buf[:n], o.seed, off) {
			return fmt.Errorf("%s@%d: %w", o.key, off, errMismatch)
		}
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != o.size {
		return fmt.Errorf("%s: read %d bytes, want %d", o.key, off, o.size)
	}
	return nil
}

func (e *env) big() obj { return obj{bigKey, bigSeed, e.cfg.bigSize} }

// seqRead reads the big object through the mount with open flags (O_DIRECT: each read(2)
// reaches the mount), against one GET of it.
func (e *env) seqRead(r *row, flags int) {
	r.unit = "MB/s"
	e.onMount(r, nil, func(m *mounted) error {
		t0 := time.Now()
		err := readSeqFlags(m.path(bigKey), e.big(), flags)
		r.ours = mbps(e.cfg.bigSize, time.Since(t0))
		return err
	})
	v, err := e.timedGet(e.big())
	baseline(r, v, err)
}

func (e *env) multiRead(r *row) {
	r.unit = "MB/s"
	objs := make([]obj, e.cfg.readers)
	for i := range objs {
		objs[i] = obj{multiKey(i), multiSeed(i), e.cfg.multiSize}
	}
	e.onMount(r, nil, func(m *mounted) error {
		t0 := time.Now()
		err := parallel(len(objs), len(objs), func(i int) error { return readSeq(m.path(objs[i].key), objs[i]) })
		r.ours = mbps(e.cfg.multiSize*int64(len(objs)), time.Since(t0))
		return err
	})
	v, err := e.timedGet(objs...)
	baseline(r, v, err)
}

// randRead: threads each pread(2) 4 KiB at random aligned offsets of the big object for
// randDur, each on its own descriptor advised POSIX_FADV_RANDOM (as fio does), so that the
// kernel's readahead does not turn each 4 KiB read into a larger one.
func (e *env) randRead(r *row, threads int) {
	r.unit = "ops/s"
	o := e.big()
	e.onMount(r, nil, func(m *mounted) error {
		var ops atomic.Int64
		deadline := time.Now().Add(e.cfg.randDur)
		t0 := time.Now()
		err := parallel(threads, threads, func(int) error {
			f, err := os.Open(m.path(o.key))
			if err != nil {
				return err
			}
			defer f.Close()
			syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, 1 /* POSIX_FADV_RANDOM */, 0, 0)
			buf := make([]byte, 4096)
			for time.Now().Before(deadline) {
				off := rand.Int64N(o.size/4096) * 4096
				if n, err := f.ReadAt(buf, off); err != nil || n != len(buf) {
					return fmt.Errorf("pread @%d: %d bytes, %v", off, n, err)
				}
				if !same(buf, o.seed, off) {
					return fmt.Errorf("pread @%d: %w", off, errMismatch)
				}
				ops.Add(1)
			}
			return nil
		})
		r.ours = float64(ops.Load()) / time.Since(t0).Seconds()
		return err
	})
	v, err := e.randGets(o, threads, e.cfg.randDur)
	baseline(r, v, err)
}

// seqWrite writes a new file like dd (1 MiB writes) and times it up to the end of close,
// which is when the mount completes the upload; then checks the object and deletes it.
func (e *env) seqWrite(r *row) {
	r.unit = "MB/s"
	o := obj{"w-big", 7, e.cfg.bigSize}
	e.onMount(r, nil, func(m *mounted) error {
		t0 := time.Now()
		f, err := os.OpenFile(m.path(o.key), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		buf := make([]byte, 1<<20)
		for off := int64(0); off < o.size && err == nil; off += int64(len(buf)) {
			b := buf[:min(int64(len(buf)), o.size-off)]
			fill(b, o.seed, off)
			_, err = f.Write(b)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		r.ours = mbps(o.size, time.Since(t0))
		return err
	})
	if r.err == nil {
		r.err = e.checkWritten(o)
	}
	b := obj{"b-big", 8, e.cfg.bigSize}
	t0 := time.Now()
	err := e.putMultipart(b.key, b.seed, b.size)
	v := mbps(b.size, time.Since(t0)) // before the check, which reads the object back
	baseline(r, v, errors.Join(err, e.checkWritten(b)))
	e.deletePrefix(o.key)
	e.deletePrefix(b.key)
}

// createSmall creates, writes and closes small files with `workers` parallel writers;
// close uploads each one.
func (e *env) createSmall(r *row) {
	r.unit = "files/s"
	n := e.cfg.smallFiles
	e.onMount(r, nil, func(m *mounted) error {
		if err := os.Mkdir(m.path("w-small"), 0o755); err != nil {
			return err
		}
		t0 := time.Now()
		err := parallel(n, e.cfg.workers, func(i int) error {
			buf := make([]byte, e.cfg.smallSize)
			fill(buf, smallSeed(i), 0)
			f, err := os.OpenFile(m.path("w-small/"+smallName(i)), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, err = f.Write(buf)
			return errors.Join(err, f.Close())
		})
		r.ours = float64(n) / time.Since(t0).Seconds()
		return err
	})
	if r.err == nil {
		r.err = e.checkSmallsWritten("w-small/", n)
	}
	v, err := e.putSmalls("b-small/", n)
	baseline(r, v, err)
	if r.err == nil {
		r.err = e.checkSmallsWritten("b-small/", n)
	}
	e.deletePrefix("w-small/")
	e.deletePrefix("b-small/")
}

func (e *env) readSmall(r *row) {
	r.unit = "files/s"
	n := e.cfg.smallFiles
	e.onMount(r, nil, func(m *mounted) error {
		t0 := time.Now()
		err := parallel(n, e.cfg.workers, func(i int) error {
			b, err := os.ReadFile(m.path(smallDir + smallName(i)))
			if err == nil && (len(b) != e.cfg.smallSize || !same(b, smallSeed(i), 0)) {
				err = fmt.Errorf("%s: %d bytes: %w", smallName(i), len(b), errMismatch)
			}
			return err
		})
		r.ours = float64(n) / time.Since(t0).Seconds()
		return err
	})
	v, err := e.getSmalls(smallDir, n, e.cfg.workers)
	baseline(r, v, err)
}

// listDir is `ls -l` twice on one fresh mount: cold, then warm (lsl).
func (e *env) listDir() []row {
	cold := row{name: fmt.Sprintf("ls -l %d entries, cold", e.cfg.dirEntries), unit: "s", floor: pages(e.cfg.dirEntries) * e.listLat.Seconds()}
	warm := row{name: fmt.Sprintf("ls -l %d entries, warm", e.cfg.dirEntries), unit: "s"}
	e.onMount(&cold, nil, func(m *mounted) error {
		var err error
		cold.ours, err = e.lsl(m.path(listDir))
		cold.reqs, cold.cpuSecs = e.reqSnap(), m.cpu()
		if err != nil {
			return err
		}
		warm.ours, warm.err = e.lsl(m.path(listDir))
		warm.reqs, warm.rssKiB, warm.cpuSecs = e.reqSnap(), m.peakRSS(), m.cpu()
		return nil
	})
	for _, r := range []*row{&cold, &warm} {
		n, secs, err := e.list(listDir)
		if err == nil && n != e.cfg.dirEntries {
			err = fmt.Errorf("listed %d entries, want %d", n, e.cfg.dirEntries)
		}
		baseline(r, secs, err)
	}
	return []row{cold, warm}
}

// lsl does what GNU ls -l does to dir: it reads the directory, then for every entry an lstat,
// and the two extended attributes ls asks for (its SELinux label and whether it has an ACL).
// On FUSE each getxattr is a round trip unless the file system told the kernel it has none.
func (e *env) lsl(dir string) (float64, error) {
	t0 := time.Now()
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return 0, err
	}
	for _, name := range names {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil {
			return 0, err
		}
		if err := lsXattrs(p); err != nil {
			return 0, err
		}
		if !fi.Mode().IsRegular() || fi.Size() != 0 {
			return 0, fmt.Errorf("%s: mode %v size %d, want an empty regular file", name, fi.Mode(), fi.Size())
		}
	}
	secs := time.Since(t0).Seconds()
	if len(names) != e.cfg.dirEntries {
		return secs, fmt.Errorf("ls found %d entries, want %d", len(names), e.cfg.dirEntries)
	}
	return secs, nil
}

// cacheReread reads the big object once to fill the mount's --cache, drops the page cache,
// and times the second read. Without the flag the row says so rather than failing.
func (e *env) cacheReread(r *row) {
	r.unit = "MB/s"
	if !e.hasCache {
		r.na = "n/a (no --cache yet)"
		return
	}
	dir, err := os.MkdirTemp("", "mount-s3-bench-cache-")
	if err != nil {
		r.err = err
		return
	}
	defer os.RemoveAll(dir)
	e.onMount(r, []string{"--cache", dir}, func(m *mounted) error {
		if err := readSeq(m.path(bigKey), e.big()); err != nil {
			return err
		}
		e.dropCaches()
		t0 := time.Now()
		err := readSeq(m.path(bigKey), e.big())
		r.ours = mbps(e.cfg.bigSize, time.Since(t0))
		if err != nil {
			return err
		}
		e.cacheDiskBytes, e.cacheDiskMBps, err = e.readTreeCold(dir)
		return err
	})
	v, err := e.timedGet(e.big())
	baseline(r, v, err)
}

// lsXattrs reads the attributes ls -l reads of each entry; "none" and "not supported" are the
// usual answers.
func lsXattrs(p string) error {
	var buf [256]byte
	for _, get := range []func() error{
		func() error { _, err := unix.Lgetxattr(p, "security.selinux", buf[:]); return err },
		func() error { _, err := unix.Getxattr(p, "system.posix_acl_access", nil); return err },
	} {
		if err := get(); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("%s: getxattr as ls -l does: %w", p, err)
		}
	}
	return nil
}
