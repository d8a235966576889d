package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
)

// explain turns a start-up failure into the one line a person reads: the cause in words and
// the next step. The SDK's error chain says the same in its own terms, at great length; it is
// logged at debug level by the caller. An error explain does not recognise is returned as is.
func explain(err error, o *options) string {
	msg := err.Error()
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
	endpoint := o.endpointURL
	if endpoint == "" {
		endpoint = "AWS S3"
		if o.region != "" {
			endpoint += " (" + o.region + ")"
		}
	}
	var inUse embedded.ErrInUse
	switch {
	case errors.As(err, &inUse):
		return inUse.Error()
	case has("no EC2 IMDS role found", "failed to refresh cached credentials", "failed to retrieve credentials",
		"static credentials are empty", "get credentials:"):
		return fmt.Sprintf("no AWS credentials found for bucket %q: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "+
			"name a profile with --profile (or AWS_PROFILE), or use --no-sign-request for a public bucket", o.bucket)
	case has("SignatureDoesNotMatch"):
		return fmt.Sprintf("%s refused the request signature for bucket %q (SignatureDoesNotMatch): the secret key does not belong to the access key ID; "+
			"check AWS_SECRET_ACCESS_KEY or the profile's aws_secret_access_key", endpoint, o.bucket)
	case has("InvalidAccessKeyId"):
		return fmt.Sprintf("%s does not know the access key ID used for bucket %q (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID or the profile, "+
			"and that --endpoint-url is the store the key was made for", endpoint, o.bucket)
	case has("x509:", "tls: failed to verify", "certificate signed by unknown authority"):
		return fmt.Sprintf("the TLS certificate of %s is not trusted (%s): give the certificate authority with --ca-bundle FILE or AWS_CA_BUNDLE",
			endpoint, tlsReason(msg))
	case errors.Is(err, s3.ErrNoSuchBucket):
		return fmt.Sprintf("bucket %q does not exist at %s: check the name, --region and --endpoint-url", o.bucket, endpoint)
	case errors.Is(err, s3.ErrAccessDenied):
		if op, perm := deniedOperation(msg); perm != "" {
			return fmt.Sprintf("%s denied %s in bucket %q (AccessDenied): the credentials need %s there; check the bucket policy, the key's policy, or --profile",
				endpoint, op, o.bucket, perm)
		}
		return fmt.Sprintf("access to bucket %q at %s was denied: the credentials need s3:ListBucket on the bucket and s3:GetObject on its objects "+
			"(s3:PutObject and s3:DeleteObject to write); check the policy, or --profile", o.bucket, endpoint)
	case has("server gave HTTP response to HTTPS client", "first record does not look like a TLS handshake"):
		return fmt.Sprintf("%s answers plain HTTP, not HTTPS: write the endpoint as http://... in --endpoint-url", endpoint)
	case has("HeadBucket") && has("StatusCode: 400"):
		return fmt.Sprintf("%s refused the bucket name %q (400 Bad Request): bucket names are 3-63 characters of lower-case letters, digits, '.' and '-', "+
			"starting and ending with a letter or digit", endpoint, o.bucket)
	case has("connection refused", "no such host", "network is unreachable", "i/o timeout", "cannot reach S3 endpoint"):
		return fmt.Sprintf("cannot reach %s for bucket %q (%s): check --endpoint-url and that the store is running and reachable",
			endpoint, o.bucket, networkReason(msg))
	}
	return msg
}

// sdkOperation finds the request an SDK error chain names ("operation error S3: PutObject").
var sdkOperation = regexp.MustCompile(`operation error S3: (\w+)`)

// deniedOperation names the request that was denied and the permission it needs, for a request
// other than the start-up check (whose answer is the general one).
func deniedOperation(msg string) (op, permission string) {
	m := sdkOperation.FindStringSubmatch(msg)
	if m == nil {
		return "", ""
	}
	switch op = m[1]; op {
	case "PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload":
		return op, "s3:PutObject"
	case "DeleteObject", "DeleteObjects":
		return op, "s3:DeleteObject"
	case "GetObject", "HeadObject":
		return op, "s3:GetObject"
	case "ListObjectsV2":
		return op, "s3:ListBucket"
	}
	return op, ""
}

func tlsReason(msg string) string {
	for _, r := range []string{"certificate signed by unknown authority", "certificate has expired", "certificate is valid for", "certificate is not valid"} {
		if strings.Contains(msg, r) {
			return r
		}
	}
	return "verification failed"
}

func networkReason(msg string) string {
	for _, r := range []string{"connection refused", "no such host", "network is unreachable", "i/o timeout"} {
		if strings.Contains(msg, r) {
			return r
		}
	}
	return "no answer"
}
