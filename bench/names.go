package main

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
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
	}
}

// walkMemory walks a tree of walkObjects objects three times on one mount, stat'ing every
// file, and reports the mount's RSS before and after each walk: what a training job that
// walks its dataset every epoch costs in memory. The row's figure is the time of the three
// walks; the RSS goes in its detail line.
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
	var rss []string
	e.onMount(r, nil, func(m *mounted) error {
		rss = append(rss, fmt.Sprintf("%d", m.rssKiB()>>10))
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
			rss = append(rss, fmt.Sprintf("%d", m.rssKiB()>>10))
		}
		r.ours = time.Since(t0).Seconds()
		return nil
	})
	r.reqs = "RSS MiB before, after each walk: " + strings.Join(rss, " -> ") + "  " + r.reqs
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
