package storetest

import (
	"context"
	"os"
	"testing"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// External returns an SDK store on the real endpoint MOUNT_S3_TEST_ENDPOINT and bucket
// MOUNT_S3_TEST_BUCKET (MinIO in CI, or S3), checked to be reachable, or skips the test when
// they are not set. MOUNT_S3_TEST_REGION sets the region and MOUNT_S3_TEST_PATH_STYLE=1
// path-style addressing; credentials come from the usual AWS environment.
func External(t *testing.T) *s3.SDKStore {
	t.Helper()
	endpoint, bucket := os.Getenv("MOUNT_S3_TEST_ENDPOINT"), os.Getenv("MOUNT_S3_TEST_BUCKET")
	if endpoint == "" || bucket == "" {
		t.Skip("set MOUNT_S3_TEST_ENDPOINT and MOUNT_S3_TEST_BUCKET (optionally MOUNT_S3_TEST_REGION, MOUNT_S3_TEST_PATH_STYLE=1) to run against a real S3 endpoint")
	}
	st, err := s3.NewSDKStore(context.Background(), s3.Config{
		Bucket:         bucket,
		EndpointURL:    endpoint,
		Region:         os.Getenv("MOUNT_S3_TEST_REGION"),
		ForcePathStyle: os.Getenv("MOUNT_S3_TEST_PATH_STYLE") != "",
	})
	if err != nil {
		t.Fatalf("store for %s: %v", endpoint, err)
	}
	if err := st.CheckBucket(context.Background()); err != nil {
		t.Fatalf("%v", err)
	}
	return st
}
