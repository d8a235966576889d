package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// The SDK's errors as MinIO and the network produce them (copied from real runs) become one
// line with the cause and the next step.
func TestExplain(t *testing.T) {
	o := &options{bucket: "data", endpointURL: "http://127.0.0.1:19000"}
	for _, c := range []struct {
		err  error
		want []string
	}{
		{errors.New(`bucket "data" (endpoint http://127.0.0.1:19000): s3 ListObjectsV2 "": operation error S3: ListObjectsV2, https response error StatusCode: 403, RequestID: 1, api error SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided.`),
			[]string{"SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY"}},
		{errors.New(`s3 ListObjectsV2: api error InvalidAccessKeyId: The Access Key Id you provided does not exist in our records.`),
			[]string{"InvalidAccessKeyId", "AWS_ACCESS_KEY_ID"}},
		{fmt.Errorf("bucket %q: %w (endpoint x)", "data", s3.ErrNoSuchBucket), []string{`bucket "data" does not exist at http://127.0.0.1:19000`}},
		{fmt.Errorf("bucket %q: %w", "data", s3.ErrAccessDenied), []string{"access to bucket \"data\"", "s3:ListBucket"}},
		// A write-back denied later names the request and the permission it needs.
		{fmt.Errorf("upload /a: s3 PutObject \"a\": operation error S3: PutObject, https response error StatusCode: 403: %w", s3.ErrAccessDenied),
			[]string{"denied PutObject in bucket \"data\"", "s3:PutObject"}},
		{fmt.Errorf("delete /a: operation error S3: DeleteObject, StatusCode: 403: %w", s3.ErrAccessDenied), []string{"denied DeleteObject", "s3:DeleteObject"}},
		{errors.New(`cannot reach S3 endpoint https://h for bucket "data": dial tcp: lookup h: no such host`), []string{"cannot reach", "no such host"}},
		{errors.New(`Get "https://h/data": tls: failed to verify certificate: x509: certificate signed by unknown authority`), []string{"--ca-bundle", "certificate signed by unknown authority"}},
		{errors.New(`Head "https://127.0.0.1:19000/data": http: server gave HTTP response to HTTPS client`), []string{"http://"}},
		{errors.New(`s3 HeadBucket "": operation error S3: HeadBucket, https response error StatusCode: 400, RequestID: 1, api error BadRequest: Bad Request`), []string{"refused the bucket name", "lower-case"}},
		{errors.New(`operation error S3: HeadBucket, get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role found`), []string{"no AWS credentials", "--no-sign-request"}},
	} {
		got := explain(c.err, o)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("explain(%v)\n = %s\nlacks %q", c.err, got, w)
			}
		}
		if strings.Contains(got, "\n") || strings.Contains(got, "operation error") {
			t.Errorf("explain(%v) = %s: not one plain line", c.err, got)
		}
	}
	if got := explain(errors.New("something else"), o); got != "something else" {
		t.Errorf("an unknown error changed: %s", got)
	}
}
