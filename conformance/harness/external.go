package harness

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/storetest"
)

// ExternalURL is the S3-compatible server the suites run against instead of the embedded one
// (MOUNT_S3_TEST_ENDPOINT, e.g. MinIO at http://127.0.0.1:9000), or "". Credentials come from
// the usual AWS environment variables; the region from MOUNT_S3_TEST_REGION (us-east-1 if
// unset). Path-style addressing is used, as MinIO and most S3-compatible stores want.
func ExternalURL() string { return os.Getenv("MOUNT_S3_TEST_ENDPOINT") }

func externalRegion() string {
	if r := os.Getenv("MOUNT_S3_TEST_REGION"); r != "" {
		return r
	}
	return "us-east-1"
}

type external struct{ url string }

func (e external) URL() string { return e.url }

var bucketSeq atomic.Int64

// newExternal makes a fresh bucket on the external server for one test and removes it, with
// everything in it and every upload left open, at cleanup. A bucket per test (not a prefix)
// keeps each test's view of the bucket exactly what it would be on the embedded server.
func newExternal(t testing.TB) (Endpoint, s3.Store) {
	t.Helper()
	ctx := context.Background()
	url := ExternalURL()
	client := externalClient(t, url)
	bucket := fmt.Sprintf("mount-s3-test-%x-%d", time.Now().UnixNano(), bucketSeq.Add(1))
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("create bucket %s on %s: %v", bucket, url, err)
	}
	t.Cleanup(func() {
		if err := removeBucket(ctx, client, bucket); err != nil {
			t.Errorf("remove test bucket %s: %v", bucket, err)
		}
	})
	store, err := s3.NewSDKStore(ctx, s3.Config{Bucket: bucket, EndpointURL: url, ForcePathStyle: true, Region: externalRegion()})
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	return external{url: url}, store
}

func externalClient(t testing.TB, url string) *awss3.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(externalRegion()))
	if err != nil {
		t.Fatalf("AWS config for %s: %v", url, err)
	}
	return awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		o.BaseEndpoint = aws.String(url)
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
}

// removeBucket aborts the bucket's open uploads, deletes its objects and then the bucket.
func removeBucket(ctx context.Context, c *awss3.Client, bucket string) error {
	ups, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		return err
	}
	for _, u := range ups.Uploads {
		if _, err := c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId}); err != nil {
			return err
		}
	}
	// MinIO lists an object "a" without the keys below "a/" (docs/STORES.md): deleting what a
	// listing shows can reveal more, so list again until nothing is left.
	for pass := 0; pass < 20; pass++ {
		deleted := 0
		p := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: &bucket})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, o := range page.Contents {
				if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &bucket, Key: o.Key}); err != nil {
					return err
				}
				deleted++
			}
		}
		if deleted == 0 {
			break
		}
	}
	_, err = c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: &bucket})
	if err != nil && strings.Contains(err.Error(), "NoSuchBucket") {
		return nil
	}
	return err
}

// Quirks are the known differences from S3 of the store the suites run on (none for the
// embedded server; MOUNT_S3_TEST_STORE names an external one, "minio" in CI).
func Quirks() storetest.Quirks {
	if ExternalURL() == "" {
		return storetest.Quirks{}
	}
	return storetest.QuirksOf(os.Getenv("MOUNT_S3_TEST_STORE"))
}

// SkipUnstorableKeys skips a test whose setup needs keys the store cannot hold as S3 does:
// names a file system refuses, or an object and keys below it (MinIO lists only the object).
// The product's behaviour on those stores is described in docs/STORES.md.
func SkipUnstorableKeys(t testing.TB, keys []string) {
	t.Helper()
	q := Quirks()
	for _, k := range keys {
		if q.FileKeyNames && !storetest.FileKeyOK(k) {
			t.Skipf("the store cannot hold the key %q (docs/STORES.md)", k)
		}
		if q.ObjectShadowsPrefix && !strings.HasSuffix(k, "/") {
			for _, o := range keys {
				if strings.HasPrefix(o, k+"/") {
					t.Skipf("the store lists the object %q without the keys below it, such as %q (docs/STORES.md)", k, o)
				}
			}
		}
	}
}

// SkipOnQuirkyStore skips a test that draws arbitrary keys (a model test) on a store with
// quirks: some of its keys would not be stored as S3 stores them.
func SkipOnQuirkyStore(t testing.TB) {
	t.Helper()
	if Quirks() != (storetest.Quirks{}) {
		t.Skipf("%s draws keys this store cannot hold as S3 does (docs/STORES.md)", t.Name())
	}
}
