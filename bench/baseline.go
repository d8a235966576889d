package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The raw SDK side of every row: what a program that talks to S3 directly, with the same
// part size and concurrency as the mount, gets from the same server.

// obj names one object and the content it must hold.
type obj struct {
	key  string
	seed uint64
	size int64
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// timedGet reads objs concurrently, each as partSize ranged GETs with inFlight of them in
// flight per object (what one mount read handle runs), checks every byte, and returns MB/s.
func (e *env) timedGet(objs ...obj) (float64, error) {
	type part struct {
		o      obj
		off, n int64
	}
	var parts []part
	var total int64
	for _, o := range objs {
		for off := int64(0); off < o.size; off += e.cfg.partSize {
			parts = append(parts, part{o, off, min(e.cfg.partSize, o.size-off)})
		}
		total += o.size
	}
	t0 := time.Now()
	err := parallel(len(parts), e.cfg.inFlight*len(objs), func(i int) error {
		p := parts[i]
		return e.getRange(p.o, p.off, p.n, nil)
	})
	return mbps(total, time.Since(t0)), err
}

// getRange GETs bytes [off, off+n) of o and checks them against o's content. The body is
// checked as it streams in (buf, or a fresh 256 KiB buffer), as a consumer would use it.
func (e *env) getRange(o obj, off, n int64, buf []byte) error {
	out, err := e.client.GetObject(e.ctx, &s3.GetObjectInput{Bucket: &e.bucket, Key: aws.String(e.key(o.key)),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))})
	if err != nil {
		return fmt.Errorf("get %s@%d: %w", o.key, off, err)
	}
	defer out.Body.Close()
	if buf == nil {
		buf = make([]byte, 256<<10)
	}
	got := int64(0)
	for {
		k, err := out.Body.Read(buf)
		if !same(buf[:k], o.seed, off+got) {
			return fmt.Errorf("get %s@%d: %w", o.key, off+got, errMismatch)
		}
		got += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("get %s@%d: %w", o.key, off, err)
		}
	}
	if got != n {
		return fmt.Errorf("get %s@%d: %d bytes, want %d", o.key, off, got, n)
	}
	return nil
}

// randGets runs threads loops of 4 KiB ranged GETs at random aligned offsets of o for d
// and returns GETs per second.
func (e *env) randGets(o obj, threads int, d time.Duration) (float64, error) {
	var ops atomic.Int64
	deadline := time.Now().Add(d)
	t0 := time.Now()
	err := parallel(threads, threads, func(int) error {
		buf := make([]byte, 4096)
		for time.Now().Before(deadline) {
			off := rand.Int64N(o.size/4096) * 4096
			if err := e.getRange(o, off, 4096, buf); err != nil {
				return err
			}
			ops.Add(1)
		}
		return nil
	})
	return float64(ops.Load()) / time.Since(t0).Seconds(), err
}

// putSmalls writes n small objects under dir with `workers` parallel PUTs; files/s.
func (e *env) putSmalls(dir string, n int) (float64, error) {
	t0 := time.Now()
	err := parallel(n, e.cfg.workers, func(i int) error {
		return e.putSmall(dir+smallName(i), smallSeed(i), e.cfg.smallSize)
	})
	return float64(n) / time.Since(t0).Seconds(), err
}

// getSmalls reads n small objects under dir with `workers` parallel GETs; files/s.
func (e *env) getSmalls(dir string, n, workers int) (float64, error) {
	t0 := time.Now()
	err := parallel(n, workers, func(i int) error {
		out, err := e.client.GetObject(e.ctx, &s3.GetObjectInput{Bucket: &e.bucket, Key: aws.String(e.key(dir + smallName(i)))})
		if err != nil {
			return fmt.Errorf("get %s: %w", smallName(i), err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err == nil && (len(b) != e.cfg.smallSize || !same(b, smallSeed(i), 0)) {
			err = fmt.Errorf("get %s: %d bytes: %w", smallName(i), len(b), errMismatch)
		}
		return err
	})
	return float64(n) / time.Since(t0).Seconds(), err
}

// list lists dir one ListObjectsV2 page (1,000 keys) at a time, as `ls` on S3 would, and
// returns the number of entries and the seconds it took.
func (e *env) list(dir string) (int, float64, error) {
	t0 := time.Now()
	n := 0
	pg := s3.NewListObjectsV2Paginator(e.client, &s3.ListObjectsV2Input{Bucket: &e.bucket,
		Prefix: aws.String(e.key(dir)), Delimiter: aws.String("/")})
	for pg.HasMorePages() {
		page, err := pg.NextPage(e.ctx)
		if err != nil {
			return n, 0, err
		}
		n += len(page.Contents) + len(page.CommonPrefixes)
	}
	return n, time.Since(t0).Seconds(), nil
}

// checkWritten checks, after a write row, that o exists with its size and exact content.
func (e *env) checkWritten(o obj) error {
	h, err := e.client.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String(e.key(o.key))})
	if err != nil {
		return fmt.Errorf("written object %s: %w", o.key, err)
	}
	if got := aws.ToInt64(h.ContentLength); got != o.size {
		return fmt.Errorf("written object %s is %d bytes, want %d", o.key, got, o.size)
	}
	_, err = e.timedGet(o)
	return err
}

// checkSmallsWritten checks that dir holds exactly the n small files, each with its content.
func (e *env) checkSmallsWritten(dir string, n int) error {
	got, _, err := e.list(dir)
	if err == nil && got != n {
		err = fmt.Errorf("%s holds %d objects, want %d", dir, got, n)
	}
	if err == nil {
		_, err = e.getSmalls(dir, n, 32)
	}
	return err
}

// probe times, one at a time, HEADs of a missing key and LISTs (max-keys 1) of a missing
// prefix: the pair of requests behind every lookup the mount sends. A server whose LIST is
// far slower than its HEAD (gofakes3 scans the whole bucket) makes lookup-heavy rows look
// worse than they would on S3, and the footer says so.
func (e *env) probe() (head, list time.Duration) {
	const n = 50
	k, p := aws.String(e.key("no-such-key")), aws.String(e.key("no-such-dir/"))
	t0 := time.Now()
	for range n {
		e.client.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: &e.bucket, Key: k})
	}
	t1 := time.Now()
	for range n {
		e.client.ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: p, MaxKeys: aws.Int32(1)})
	}
	return t1.Sub(t0) / n, time.Since(t1) / n
}
