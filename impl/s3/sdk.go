package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
)

// Config selects the bucket and how to reach it. Zero values mean "the SDK's default".
type Config struct {
	Bucket      string
	Region      string // "" = us-east-1 with EndpointURL, else the SDK chain, else us-east-1
	EndpointURL string // "" = AWS; otherwise e.g. http://127.0.0.1:9000
	// ForcePathStyle addresses the bucket as http://host/bucket/key, which most
	// S3-compatible stores (and the embedded server) need.
	ForcePathStyle bool
	Profile        string // shared config profile; "" = default chain
	NoSignRequest  bool   // anonymous requests, for public buckets
	// CABundle is a PEM file of extra roots. "" still honours AWS_CA_BUNDLE through the
	// SDK's default config loading.
	CABundle    string
	MaxAttempts int    // 0 = DefaultMaxAttempts
	UserAgent   string // appended to the SDK user agent
	// StaticCredentials, when AccessKeyID is set, replace the default chain. The
	// embedded server wants them: it checks no signature, but without credentials the
	// SDK would first probe the chain (including slow EC2 metadata lookups) and fail.
	StaticCredentials StaticCredentials

	// UserAgentPrefix is put before the SDK's User-Agent on every request
	// (--user-agent-prefix; the CSI driver names itself with it).
	UserAgentPrefix string
	// RequesterPays sends x-amz-request-payer: requester on every request.
	RequesterPays bool
	// ExpectedBucketOwner sends x-amz-expected-bucket-owner on every request: a bucket owned
	// by another account then answers 403 instead of serving or storing data.
	ExpectedBucketOwner string
	// DualStack and Accelerate pick AWS's dual-stack (IPv4 and IPv6) and Transfer
	// Acceleration endpoints. Neither applies to a custom EndpointURL.
	DualStack, Accelerate bool
	// BindInterfaces are network interfaces to send requests through (SO_BINDTODEVICE),
	// connections spread over them in turn; empty means the routing table decides.
	BindInterfaces []string
	// RequestLog, if set, gets one debug line per HTTP attempt (operation, status, time) and
	// the SDK's retry decisions (--debug-crt). Credentials and signatures never reach it.
	RequestLog *slog.Logger
	// Observe, if set, is told of every HTTP attempt (metrics).
	Observe Observer
	// Log, if set, gets the cleanups the store does on its own: multipart uploads a lost
	// answer left behind, found and aborted.
	Log *slog.Logger
}

// StaticCredentials are a fixed access key.
type StaticCredentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// DefaultMaxAttempts is the attempt budget per request (first try included). Throttling
// and 5xx from a busy bucket usually clear within a few seconds of backoff; ten attempts
// with a 20s cap rides that out without hanging a file operation forever.
const DefaultMaxAttempts = 10

const (
	maxBackoff = 20 * time.Second
	// Parallel ranged GETs of one large object all go to one host, and so do sync mode's
	// 128 attribute HEADs ahead of an `ls -l` (impl/sync/importer); the default of 2 idle
	// connections per host would make most of them redial, a TLS handshake each on S3.
	maxIdleConnsPerHost = 128
	checkTimeout        = 10 * time.Second
)

// SDKStore is the Store backed by aws-sdk-go-v2.
type SDKStore struct {
	client   *s3.Client
	bucket   string
	endpoint string
	log      *slog.Logger // cleanups done on the caller's behalf (stray uploads)
}

var _ Store = (*SDKStore)(nil)

// NewSDKStore builds a client from cfg and the SDK's default credential chain. It does
// no network I/O; call CheckBucket to find out whether the bucket is usable.
func NewSDKStore(ctx context.Context, cfg Config) (*SDKStore, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket given")
	}
	maxAttempts := cfg.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}

	// The SDK only knows how to add AWS_CA_BUNDLE / a custom bundle to its own
	// BuildableClient, so the transport is tuned through it rather than replaced.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
		if tr.MaxIdleConns < maxIdleConnsPerHost {
			tr.MaxIdleConns = maxIdleConnsPerHost
		}
	})
	if len(cfg.BindInterfaces) > 0 {
		control, err := bindControl(cfg.BindInterfaces)
		if err != nil {
			return nil, err
		}
		httpClient = httpClient.WithDialerOptions(func(d *net.Dialer) { d.Control = control })
	}

	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer { return newRetryer(maxAttempts) }),
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	switch c := cfg.StaticCredentials; {
	case cfg.NoSignRequest:
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	case c.AccessKeyID != "":
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
	}
	region := cfg.Region
	if region == "" && cfg.EndpointURL != "" {
		region = "us-east-1"
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if cfg.CABundle != "" {
		f, err := os.Open(cfg.CABundle)
		if err != nil {
			return nil, fmt.Errorf("s3: CA bundle: %w", err)
		}
		defer f.Close()
		opts = append(opts, config.WithCustomCABundle(f))
	}

	if cfg.DualStack {
		opts = append(opts, config.WithUseDualStackEndpoint(aws.DualStackEndpointStateEnabled))
	}
	if cfg.RequestLog == nil {
		// The SDK's default logger writes warnings (an IMDSv1 fallback) straight to stderr,
		// around the one line a failed start-up prints.
		opts = append(opts, config.WithLogger(logging.Nop{}))
	} else {
		// Retries and response headers only: a request dump would carry the Authorization
		// header, whose credential scope names the access key.
		opts = append(opts, config.WithClientLogMode(aws.LogRetries|aws.LogResponse),
			config.WithLogger(sdkLogger{cfg.RequestLog}))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: loading AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}

	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.EndpointURL != "" {
			o.BaseEndpoint = aws.String(cfg.EndpointURL)
		}
		o.UsePathStyle = cfg.ForcePathStyle
		// Many S3-compatible stores reject the newer default checksum headers and
		// trailers; send and verify checksums only when the operation demands it
		// (or when WriteOptions asks for crc32c).
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		if cfg.UserAgent != "" {
			o.APIOptions = append(o.APIOptions, awsmiddleware.AddUserAgentKey(cfg.UserAgent))
		}
		o.APIOptions = append(o.APIOptions, addAttemptCounter)
		o.UseAccelerate = cfg.Accelerate
		if cfg.UserAgentPrefix != "" {
			o.APIOptions = append(o.APIOptions, prefixUserAgent(cfg.UserAgentPrefix))
		}
		headers := map[string]string{}
		if cfg.RequesterPays {
			headers["X-Amz-Request-Payer"] = "requester"
		}
		if cfg.ExpectedBucketOwner != "" {
			headers["X-Amz-Expected-Bucket-Owner"] = cfg.ExpectedBucketOwner
		}
		if len(headers) > 0 {
			o.APIOptions = append(o.APIOptions, addHeaders(headers))
		}
		if cfg.RequestLog != nil {
			o.APIOptions = append(o.APIOptions, logAttempts(cfg.RequestLog))
		}
		if cfg.Observe != nil {
			o.APIOptions = append(o.APIOptions, observeAttempts(cfg.Observe))
		}
	})
	endpoint := cfg.EndpointURL
	if endpoint == "" {
		endpoint = "AWS S3 (" + awsCfg.Region + ")"
	}
	logger := cfg.Log
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SDKStore{client: client, bucket: cfg.Bucket, endpoint: endpoint, log: logger}, nil
}

// attemptsKey carries, in a call's context, the counter addAttemptCounter increments.
type attemptsKey struct{}

// withAttemptCount makes every HTTP attempt of the call made with the returned context count
// in n: the retries inside the SDK included, whatever its result metadata says.
func withAttemptCount(ctx context.Context, n *atomic.Int32) context.Context {
	return context.WithValue(ctx, attemptsKey{}, n)
}

// addAttemptCounter adds, after the SDK's retry middleware, a step that runs once per attempt.
func addAttemptCounter(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("mount-s3-attempts",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if n, ok := ctx.Value(attemptsKey{}).(*atomic.Int32); ok {
				n.Add(1)
			}
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

// newRetryer retries throttling (SlowDown), 5xx and connection errors with exponential
// backoff. The client-side retry token bucket is disabled: under sustained throttling it
// makes requests fail fast with "retry quota exceeded", which a file system would turn
// into EIO instead of simply slowing down.
func newRetryer(maxAttempts int) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = maxBackoff
		o.RateLimiter = ratelimit.None
		o.Retryables = append(append([]retry.IsErrorRetryable(nil), o.Retryables...),
			retry.RetryableErrorCode{Codes: damagedInTransit}, retry.IsErrorRetryableFunc(cutShort))
	})
}

// cutShort: an answer whose body ended before its Content-Length (the connection dropped
// mid-body). The SDK calls that a deserialization failure and gives up; it is a network fault
// like any other, and the request is sent again.
func cutShort(err error) aws.Ternary {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return aws.TrueTernary
	}
	return aws.UnknownTernary
}

// damagedInTransit are the codes of a request the store refused because its body did not
// arrive whole or intact (a connection cut mid-upload, a flipped byte caught by Content-MD5):
// sending it again is the fix, as for a 5xx.
var damagedInTransit = map[string]struct{}{
	"BadDigest":                 {},
	"IncompleteBody":            {},
	"XAmzContentSHA256Mismatch": {},
}

// Bucket implements Store.
func (s *SDKStore) Bucket() string { return s.bucket }

// CheckBucket verifies the bucket exists and is reachable with our credentials, quickly:
// it is meant for start-up, where an unreachable endpoint must fail within seconds rather
// than after a full retry budget. The error wraps ErrNoSuchBucket, ErrAccessDenied, or a
// network error, with a message meant for humans.
func (s *SDKStore) CheckBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	fast := func(o *s3.Options) { o.Retryer = newRetryer(2) }

	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}, fast)
	if err == nil {
		return nil
	}
	if hint := regionHint(err); hint != "" {
		return fmt.Errorf("bucket %q is in region %s; pass that region: %w", s.bucket, hint, err)
	}
	if isHTTPStatus(err, http.StatusNotFound) {
		return fmt.Errorf("bucket %q: %w (endpoint %s)", s.bucket, ErrNoSuchBucket, s.endpoint)
	}
	if isHTTPStatus(err, http.StatusForbidden) {
		// HeadBucket needs s3:ListBucket on the bucket ARN; some policies and some
		// S3-compatible stores refuse it while still allowing listing.
		_, lerr := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, MaxKeys: aws.Int32(1)}, fast)
		if lerr == nil {
			return nil
		}
		return fmt.Errorf("bucket %q (endpoint %s): %w", s.bucket, s.endpoint, mapError("ListObjectsV2", "", lerr))
	}
	if ctx.Err() != nil || isNetworkError(err) {
		return fmt.Errorf("cannot reach S3 endpoint %s for bucket %q: %w", s.endpoint, s.bucket, err)
	}
	return fmt.Errorf("bucket %q (endpoint %s): %w", s.bucket, s.endpoint, mapError("HeadBucket", "", err))
}
