package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mount-s3/mount-s3/impl/s3/embedded"
)

// serverOptions name an external server; a zero value means the embedded one.
type serverOptions struct{ endpoint, bucket, region string }

// env is what every workload shares: the server, the raw client, the binary.
type env struct {
	ctx              context.Context
	cfg              config
	logw             io.Writer
	srv              *embedded.Server // nil for an external server
	client           *s3.Client
	bucket           string
	prefix           string   // every key of this run lives under it; the mount gets it as --prefix
	mountArgs        []string // how the mount reaches the server
	mountEnv         []string
	bin              string
	binDir           string // the built binary's temporary directory, removed at teardown
	hasCache         bool   // the binary has a --cache flag
	dropOK           bool   // drop_caches worked
	serverDesc       string
	reqs             *reqStats     // embedded server only
	loadStart        string        // 1-minute load average when the run started
	headLat, listLat time.Duration // one HEAD and one LIST (max-keys 1), after seeding
	cacheDiskBytes   int64         // what the cache row left in its --cache dir
	cacheDiskMBps    float64       // reading that back cold, file by file
	shaper           *shaper       // the S3 profile's proxy, nil on loopback
	walkSeeded       bool          // the memory-after-walks row's objects are in the bucket
	bigDirSeeded     bool          // the big directory row's objects are in the bucket
}

func setup(ctx context.Context, cfg config, so serverOptions, logw io.Writer) (*env, error) {
	e := &env{ctx: ctx, cfg: cfg, logw: logw, dropOK: true, loadStart: loadAvg()}
	if so.bucket == "" {
		e.reqs = newReqStats("bench")
		srv, err := embedded.Start(embedded.Options{Buckets: []string{"bench"}, Middleware: e.reqs.middleware})
		if err != nil {
			return nil, err
		}
		e.srv, e.bucket, e.prefix = srv, "bench", "run/"
		so.endpoint, so.region = srv.URL(), "us-east-1"
		e.serverDesc = "embedded in-memory server (gofakes3) in the bench process at " + srv.URL()
		e.mountEnv = []string{"AWS_ACCESS_KEY_ID=" + embedded.Credentials.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + embedded.Credentials.SecretAccessKey}
	} else {
		// A fresh prefix per run, so runs never see each other's objects; teardown deletes it.
		e.bucket, e.prefix = so.bucket, "mount-s3-bench-"+strconv.FormatInt(time.Now().UnixNano(), 36)+"/"
		e.serverDesc = "external server " + so.endpoint + " bucket " + so.bucket
		if so.endpoint == "" {
			e.serverDesc = "AWS S3 bucket " + so.bucket
		}
	}
	if so.region == "" {
		so.region = "us-east-1"
	}
	if cfg.profile.shaped() {
		up := so.endpoint
		if up == "" {
			e.teardown()
			return nil, fmt.Errorf("the %s profile needs an endpoint URL to shape (BENCH_ENDPOINT)", cfg.profile.name)
		}
		sh, err := startShaper(cfg.profile, up)
		if err != nil {
			e.teardown()
			return nil, err
		}
		e.shaper, so.endpoint = sh, sh.url
		e.serverDesc += ", behind the " + cfg.profile.describe() + " shaper at " + sh.url
	}
	e.mountArgs = []string{"--region", so.region, "--prefix", e.prefix}
	if so.endpoint != "" {
		e.mountArgs = append(e.mountArgs, "--endpoint-url", so.endpoint, "--force-path-style")
	}
	e.mountArgs = append(e.mountArgs, cfg.mountArgs...)
	client, err := newClient(ctx, so, e.srv != nil)
	if err != nil {
		e.teardown()
		return nil, err
	}
	e.client = client
	if e.bin, e.binDir, err = binary(ctx, logw); err != nil {
		e.teardown()
		return nil, err
	}
	e.hasCache = hasFlag(e.bin, "--cache")
	return e, nil
}

// newClient builds the baseline client the way the product builds its own (impl/s3.NewSDKStore):
// the same idle-connection pool and checksum settings, so the baseline is the SDK at its
// best for this job rather than the SDK's defaults.
func newClient(ctx context.Context, so serverOptions, static bool) (*s3.Client, error) {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost, tr.MaxIdleConns = 64, max(tr.MaxIdleConns, 64)
	})
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithHTTPClient(hc), awsconfig.WithRegion(so.region)}
	if static {
		c := embedded.Credentials
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(ac, func(o *s3.Options) {
		if so.endpoint != "" {
			o.BaseEndpoint, o.UsePathStyle = aws.String(so.endpoint), true
		}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}), nil
}

// teardown unmounts whatever is still mounted (only after a panic), deletes this run's
// objects from an external bucket, and stops an embedded server.
func (e *env) teardown() {
	unmountAll()
	if e.binDir != "" {
		os.RemoveAll(e.binDir)
	}
	if e.srv != nil {
		e.srv.Close()
	} else if e.client != nil {
		e.deletePrefix("")
	}
	if e.shaper != nil {
		e.shaper.close()
	}
}

func (e *env) key(k string) string { return e.prefix + k }

// Object names and their content seeds. Seeds make every object's bytes distinct.
const (
	bigKey   = "big"
	bigSeed  = 1
	multiDir = "multi/"
	smallDir = "small/"
	listDir  = "dir/"
	treeDir  = "tree/"
	// bigDirName is the one directory of bigDirEntries objects.
	bigDirName = "bigdir"
)

// treeKey names object j of directory i of the find/du tree.
func treeKey(i, j int) string { return fmt.Sprintf("%sd%03d/f%04d", treeDir, i, j) }

func multiKey(i int) string  { return fmt.Sprintf("%sm%d", multiDir, i) }
func multiSeed(i int) uint64 { return 100 + uint64(i) }
func smallName(i int) string { return fmt.Sprintf("f%05d", i) }
func smallSeed(i int) uint64 { return 1000 + uint64(i) }

// seed puts every object the read workloads need, with the raw client, before any timing.
func (e *env) seed() error {
	t0 := time.Now()
	fmt.Fprintf(e.logw, "seeding %s, %d x %s, %d small files and a %d-object directory\n",
		size(e.cfg.bigSize), e.cfg.readers, size(e.cfg.multiSize), e.cfg.smallFiles, e.cfg.dirEntries)
	if err := e.putMultipart(bigKey, bigSeed, e.cfg.bigSize); err != nil {
		return err
	}
	for i := 0; i < e.cfg.readers; i++ {
		if err := e.putMultipart(multiKey(i), multiSeed(i), e.cfg.multiSize); err != nil {
			return err
		}
	}
	err := parallel(e.cfg.smallFiles, 32, func(i int) error {
		return e.putSmall(smallDir+smallName(i), smallSeed(i), e.cfg.smallSize)
	})
	if err != nil {
		return err
	}
	// Empty objects: the listing rows measure names and metadata, not bytes.
	err = parallel(e.cfg.dirEntries, 32, func(i int) error { return e.putSmall(listDir+smallName(i), 0, 0) })
	if err != nil {
		return err
	}
	err = parallel(e.cfg.treeDirs*e.cfg.treeFiles, 32, func(k int) error {
		return e.putSmall(treeKey(k/e.cfg.treeFiles, k%e.cfg.treeFiles), uint64(k), 100)
	})
	fmt.Fprintf(e.logw, "seeded in %.1f s\n", time.Since(t0).Seconds())
	return err
}

// putSmall is one PutObject with the crc32c checksum the mount also sends by default.
func (e *env) putSmall(key string, seed uint64, n int) error {
	buf := make([]byte, n)
	fill(buf, seed, 0)
	_, err := e.client.PutObject(e.ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String(e.key(key)),
		Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(n)), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	return err
}

// putMultipart uploads size bytes of seed's content as partSize parts, inFlight at a time,
// with crc32c part checksums (the mount's default): the write baseline, and how big objects
// are seeded.
func (e *env) putMultipart(key string, seed uint64, sz int64) error {
	k := aws.String(e.key(key))
	up, err := e.client.CreateMultipartUpload(e.ctx, &s3.CreateMultipartUploadInput{Bucket: &e.bucket, Key: k,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	if err != nil {
		return err
	}
	ps := e.cfg.partSize
	n := int((sz + ps - 1) / ps)
	parts := make([]types.CompletedPart, n)
	bufs := sync.Pool{New: func() any { return make([]byte, ps) }}
	err = parallel(n, e.cfg.inFlight, func(i int) error {
		buf := bufs.Get().([]byte)[:min(ps, sz-int64(i)*ps)]
		defer bufs.Put(buf[:cap(buf)])
		fill(buf, seed, int64(i)*ps)
		out, err := e.client.UploadPart(e.ctx, &s3.UploadPartInput{Bucket: &e.bucket, Key: k, UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf))),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
		if err == nil {
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag, ChecksumCRC32C: out.ChecksumCRC32C}
		}
		return err
	})
	if err == nil {
		_, err = e.client.CompleteMultipartUpload(e.ctx, &s3.CompleteMultipartUploadInput{Bucket: &e.bucket, Key: k,
			UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	}
	if err != nil {
		e.client.AbortMultipartUpload(e.ctx, &s3.AbortMultipartUploadInput{Bucket: &e.bucket, Key: k, UploadId: up.UploadId})
		return fmt.Errorf("multipart put %s: %w", key, err)
	}
	return nil
}

// deletePrefix deletes every object under the run's prefix + p, so the written objects do
// not hold the in-memory server's RAM for the rest of the run.
func (e *env) deletePrefix(p string) error {
	pg := s3.NewListObjectsV2Paginator(e.client, &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: aws.String(e.key(p))})
	for pg.HasMorePages() {
		page, err := pg.NextPage(e.ctx)
		if err != nil {
			return err
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		if _, err := e.client.DeleteObjects(e.ctx, &s3.DeleteObjectsInput{Bucket: &e.bucket, Delete: &types.Delete{Objects: ids}}); err != nil {
			return err
		}
	}
	return nil
}

// parallel runs fn(0..n-1) on `workers` goroutines and returns the first error; after an
// error the remaining indexes are skipped.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// The content of every object is a window into one random pool, starting at a per-seed
// offset. The pool's size is odd, so no part-aligned distance within an object repeats
// the pool: a part served from the wrong offset, or another object's bytes, never
// compares equal. Filling and checking are memcpy/memcmp, cheap next to the I/O measured.
const poolSize = 64<<20 + 4097

var pool = func() []byte {
	b := make([]byte, poolSize)
	rand.NewChaCha8([32]byte{'m', 'o', 'u', 'n', 't'}).Read(b)
	return b
}()

func poolOff(seed uint64, off int64) int64 {
	return int64((seed*0x9E3779B97F4A7C15 + uint64(off)) % poolSize)
}

// fill writes seed's content at off into dst.
func fill(dst []byte, seed uint64, off int64) {
	for len(dst) > 0 {
		p := poolOff(seed, off)
		n := copy(dst, pool[p:])
		dst, off = dst[n:], off+int64(n)
	}
}

// same reports whether data is seed's content at off.
func same(data []byte, seed uint64, off int64) bool {
	for len(data) > 0 {
		p := poolOff(seed, off)
		n := min(len(data), int(poolSize-p))
		if !bytes.Equal(data[:n], pool[p:p+int64(n)]) {
			return false
		}
		data, off = data[n:], off+int64(n)
	}
	return true
}

// loadAvg is the 1-minute load average: figures taken while other work competes for the
// CPUs are noise, and the table says so.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := bytes.Fields(b); err == nil && len(f) > 0 {
		return string(f[0])
	}
	return "?"
}

// errMismatch is a read that returned the wrong bytes.
var errMismatch = errors.New("data differs from what was written")

// dropCaches writes back and empties the page cache so a read row starts cold even for data an earlier
// row read; it needs root. A failure is reported under the table, not fatal.
func (e *env) dropCaches() {
	// Dirty pages survive drop_caches: without the sync, files just written (the --cache
	// row's blocks) would still be read from memory.
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		e.dropOK = false
	}
}
