package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The rows that touch names and small files, where a round trip per name is what costs: each
// carries its round-trip floor, the fewest requests any client needs (a LIST page per 1,000
// names, a GET per file) times this server's latency for each.

func (e *env) nameWorkloads() []workload {
	c := e.cfg
	return []workload{
		one(fmt.Sprintf("stat %d names in one dir, cold", c.dirEntries), e.statCold),
		one(fmt.Sprintf("cat %d x %s, one after another", c.smallFiles, size(int64(c.smallSize))), e.catSerial),
		one(fmt.Sprintf("find + du, %d objects in %d dirs", c.treeDirs*c.treeFiles, c.treeDirs), e.findDu),
		one(fmt.Sprintf("find + stat %d objects, 3 walks (RSS after each)", c.walkObjects), e.walkMemory),
		{fmt.Sprintf("ls -l %d entries in one dir", c.bigDirEntries), e.bigDir},
	}
}

// walkMemory walks a tree of walkObjects objects three times on one mount, stat'ing every
// file, and reports the mount's heap after a collection and its RSS before and after each
// walk: what a training job that walks its dataset every epoch costs in memory. The row's figure is the time of the three walks; the memory
// goes in its detail line.
func (e *env) walkMemory(r *row) {
	r.unit = "s"
	n := e.cfg.walkObjects
	dirs := max(1, n/1000)
	if !e.walkSeeded {
		err := parallel(n, 32, func(k int) error {
			return e.putSmall(fmt.Sprintf("walk/d%03d/f%04d", k%dirs, k/dirs), 0, 0)
		})
		if err != nil {
			r.err = err
			return
		}
		e.walkSeeded = true
	}
	r.floor = 3 * pages(n) * e.listLat.Seconds()
	// The heap after a collection is what the mount keeps; RSS also holds what the Go runtime
	// has not handed back yet. MOUNT_S3_PPROF serves the first.
	addr, err := freeAddr()
	if err != nil {
		r.err = err
		return
	}
	env := e.mountEnv
	e.mountEnv = append(append([]string(nil), env...), "MOUNT_S3_PPROF="+addr)
	defer func() { e.mountEnv = env }()
	var rss, heap []string
	sample := func(m *mounted) {
		rss = append(rss, fmt.Sprintf("%d", m.rssKiB()>>10))
		heap = append(heap, fmt.Sprintf("%d", heapAfterGC(addr)>>20))
	}
	e.onMount(r, nil, func(m *mounted) error {
		sample(m)
		t0 := time.Now()
		for walk := 0; walk < 3; walk++ {
			files := 0
			err := filepath.WalkDir(m.path("walk"), func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if _, err := os.Lstat(p); err != nil {
					return err
				}
				if !d.IsDir() {
					files++
				}
				return nil
			})
			if err == nil && files != n {
				err = fmt.Errorf("walk %d found %d files, want %d", walk+1, files, n)
			}
			if err != nil {
				return err
			}
			sample(m)
		}
		r.ours = time.Since(t0).Seconds()
		return nil
	})
	r.reqs = "MiB before and after each walk: heap " + strings.Join(heap, " -> ") + ", RSS " + strings.Join(rss, " -> ") + "  " + r.reqs
}

// freeAddr is a loopback address nobody listens on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// heapAfterGC asks the mount's pprof endpoint to collect garbage and returns the heap in use
// then (runtime.MemStats.HeapAlloc), or -1 MiB. (The kernel holds an inode for every name a
// walk saw until memory is short, so the mount keeps them too; dropping the kernel's caches
// to see past that sends a storm of forgets, and jacobsa/fuse keeps a message buffer for each
// one in flight, which then dwarfs everything else.)
func heapAfterGC(addr string) int64 {
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return -1 << 20
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "# HeapAlloc = "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return -1 << 20
}

// pages is the number of LIST pages n names need.
func pages(n int) float64 { return math.Max(1, math.Ceil(float64(n)/1000)) }

// statCold stats every name of the listing directory on a fresh mount, by name, without
// reading the directory first (a program that knows its file names: a loader with a manifest,
// make, git status).
func (e *env) statCold(r *row) {
	r.unit = "s"
	n := e.cfg.dirEntries
	r.floor = pages(n) * e.listLat.Seconds()
	e.onMount(r, nil, func(m *mounted) error {
		t0 := time.Now()
		for i := 0; i < n; i++ {
			fi, err := os.Lstat(m.path(listDir + smallName(i)))
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() || fi.Size() != 0 {
				return fmt.Errorf("%s: mode %v size %d, want an empty file", smallName(i), fi.Mode(), fi.Size())
			}
		}
		r.ours = time.Since(t0).Seconds()
		return nil
	})
	// The least any client can do: list the directory, which answers every name.
	_, secs, err := e.list(listDir)
	baseline(r, secs, err)
}

// catSerial reads the small files one after another, like cat or a single-threaded loader.
func (e *env) catSerial(r *row) {
	r.unit = "s"
	n := e.cfg.smallFiles
	r.floor = float64(n) * e.headLat.Seconds()
	e.onMount(r, nil, func(m *mounted) error {
		t0 := time.Now()
		for i := 0; i < n; i++ {
			b, err := os.ReadFile(m.path(smallDir + smallName(i)))
			if err != nil {
				return err
			}
			if len(b) != e.cfg.smallSize || !same(b, smallSeed(i), 0) {
				return fmt.Errorf("%s: %d bytes: %w", smallName(i), len(b), errMismatch)
			}
		}
		r.ours = time.Since(t0).Seconds()
		return nil
	})
	rate, err := e.getSmalls(smallDir, n, 1)
	if rate > 0 {
		baseline(r, float64(n)/rate, err)
	} else {
		baseline(r, 0, err)
	}
}

// findDu walks the tree and stats every entry, as find and du -s do, and checks the total.
func (e *env) findDu(r *row) {
	r.unit = "s"
	n := e.cfg.treeDirs * e.cfg.treeFiles
	r.floor = pages(n) * e.listLat.Seconds()
	e.onMount(r, nil, func(m *mounted) error {
		t0 := time.Now()
		files, total := 0, int64(0)
		err := filepath.WalkDir(m.path(strings.TrimSuffix(treeDir, "/")), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				files++
				total += fi.Size()
			}
			return nil
		})
		r.ours = time.Since(t0).Seconds()
		if err == nil && (files != n || total != int64(n)*100) {
			err = fmt.Errorf("found %d files of %d bytes in all, want %d of %d", files, total, n, n*100)
		}
		return err
	})
	// The least any client can do: one flat listing of the tree.
	t0 := time.Now()
	count := 0
	pg := s3.NewListObjectsV2Paginator(e.client, &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: aws.String(e.key(treeDir))})
	for pg.HasMorePages() {
		page, err := pg.NextPage(e.ctx)
		if err != nil {
			baseline(r, 0, err)
			return
		}
		count += len(page.Contents)
	}
	var err error
	if count != n {
		err = fmt.Errorf("listed %d objects, want %d", count, n)
	}
	baseline(r, time.Since(t0).Seconds(), err)
}

// bigDir is `ls -l` of one directory of bigDirEntries entries, as the walk is for many
// directories: the time until the first entry (a listing should not be held back until its
// last page), the whole `ls -l`, and the mount's peak RSS. The floor is every page of the
// listing, one after another.
func (e *env) bigDir() []row {
	n := e.cfg.bigDirEntries
	first := row{name: fmt.Sprintf("ls -l %d entries in one dir: first entry", n), unit: "s", floor: e.listLat.Seconds()}
	all := row{name: fmt.Sprintf("ls -l %d entries in one dir: all", n), unit: "s", floor: pages(n) * e.listLat.Seconds()}
	if !e.bigDirSeeded {
		if err := e.seedEmpty(bigDirName, n); err != nil {
			first.err = err
			return []row{first, all}
		}
		e.bigDirSeeded = true
	}
	e.onMount(&all, nil, func(m *mounted) error {
		t0 := time.Now()
		f, err := os.Open(m.path(bigDirName))
		if err != nil {
			return err
		}
		defer f.Close()
		names, err := f.Readdirnames(1)
		if err != nil || len(names) != 1 {
			return fmt.Errorf("the first entry: %v", err)
		}
		first.ours = time.Since(t0).Seconds()
		rest, err := f.Readdirnames(-1)
		if err != nil {
			return err
		}
		names = append(names, rest...)
		if len(names) != n {
			return fmt.Errorf("listed %d entries, want %d", len(names), n)
		}
		for _, name := range names {
			if _, err := os.Lstat(filepath.Join(m.path(bigDirName), name)); err != nil {
				return err
			}
		}
		all.ours = time.Since(t0).Seconds()
		return nil
	})
	first.rssKiB, first.err = all.rssKiB, all.err
	// The raw SDK's side: the first page, then every page.
	t0 := time.Now()
	out, err := e.client.ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: aws.String(e.key(bigDirName + "/")), Delimiter: aws.String("/")})
	if err == nil && len(out.Contents) == 0 {
		err = errors.New("the first page is empty")
	}
	baseline(&first, time.Since(t0).Seconds(), err)
	cnt, secs, err := e.list(bigDirName + "/")
	if err == nil && cnt != n {
		err = fmt.Errorf("listed %d entries, want %d", cnt, n)
	}
	baseline(&all, secs, err)
	return []row{first, all}
}

// seedEmpty puts n empty objects dir/f0000000...: straight into the embedded server's
// backend when the bench runs one (a million PUTs over HTTP would take minutes), else with
// the raw client.
func (e *env) seedEmpty(dir string, n int) error {
	t0 := time.Now()
	name := func(i int) string { return fmt.Sprintf("%s/f%07d", dir, i) }
	var err error
	if e.srv != nil {
		b := e.srv.Backend()
		err = parallel(n, 8, func(i int) error {
			_, err := b.PutObject(e.bucket, e.key(name(i)), map[string]string{}, bytes.NewReader(nil), 0, nil)
			return err
		})
	} else {
		err = parallel(n, 32, func(i int) error { return e.putSmall(name(i), 0, 0) })
	}
	fmt.Fprintf(e.logw, "seeded %d objects in %s/ in %.1f s\n", n, dir, time.Since(t0).Seconds())
	return err
}
