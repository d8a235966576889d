package s3

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// prefixUserAgent puts prefix before the User-Agent the SDK builds, as Mountpoint's
// --user-agent-prefix does: the CSI driver and fleet operators tell their traffic apart by it.
func prefixUserAgent(prefix string) func(*middleware.Stack) error {
	mw := middleware.BuildMiddlewareFunc("mount-s3-user-agent-prefix",
		func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				if ua := req.Header.Get("User-Agent"); ua != "" {
					req.Header.Set("User-Agent", prefix+" "+ua)
				} else {
					req.Header.Set("User-Agent", prefix)
				}
			}
			return next.HandleBuild(ctx, in)
		})
	return func(stack *middleware.Stack) error {
		if _, ok := stack.Build.Get("UserAgent"); ok {
			return stack.Build.Insert(mw, "UserAgent", middleware.After)
		}
		return stack.Build.Add(mw, middleware.After)
	}
}

// addHeaders sets fixed headers on every request before it is signed (requester-pays,
// expected bucket owner): S3 checks them on every operation, so they go on all.
func addHeaders(h map[string]string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Build.Add(middleware.BuildMiddlewareFunc("mount-s3-headers",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					for k, v := range h {
						req.Header.Set(k, v)
					}
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	}
}

// logAttempts logs every HTTP attempt at debug level: the operation, method and path, the
// status and the time it took. Only the path is logged: no query (a presigned URL carries its
// signature there) and no header.
func logAttempts(log *slog.Logger) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("mount-s3-request-log",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				start := time.Now()
				out, md, err := next.HandleFinalize(ctx, in)
				attrs := []any{"operation", middleware.GetOperationName(ctx), "duration", time.Since(start).Round(time.Microsecond)}
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					attrs = append(attrs, "method", req.Method, "path", req.URL.EscapedPath())
				}
				if resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
					attrs = append(attrs, "status", resp.StatusCode)
				}
				if err != nil {
					attrs = append(attrs, "error", err.Error())
				}
				log.Debug("s3 request", attrs...)
				return out, md, err
			}), middleware.After)
	}
}

// sdkLogger sends the SDK's own log lines (retry decisions, response headers) to slog at
// debug level.
type sdkLogger struct{ l *slog.Logger }

func (s sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	s.l.Debug("s3 client: "+fmt.Sprintf(format, v...), "class", string(c))
}

// Observer is told of every HTTP attempt to the store (the metrics package implements it).
type Observer interface {
	S3Attempt(op string, status int, d time.Duration, sent, received int64, retry bool)
}

type attemptNoKey struct{}

// observeAttempts reports each attempt to obs: its operation, HTTP status (0 when no answer
// came), duration, body sizes as declared, and whether it repeats an earlier attempt of the
// same call.
func observeAttempts(obs Observer) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		if err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("mount-s3-observe-call",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				return next.HandleInitialize(context.WithValue(ctx, attemptNoKey{}, new(int)), in)
			}), middleware.Before); err != nil {
			return err
		}
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("mount-s3-observe-attempt",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				retry := false
				if n, ok := ctx.Value(attemptNoKey{}).(*int); ok {
					*n++ // attempts of one call run one after another
					retry = *n > 1
				}
				start := time.Now()
				out, md, err := next.HandleFinalize(ctx, in)
				var sent, received int64
				status := 0
				if req, ok := in.Request.(*smithyhttp.Request); ok && req.ContentLength > 0 {
					sent = req.ContentLength
				}
				if resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
					status = resp.StatusCode
					// A HEAD's Content-Length is the object's, and no body follows it.
					if resp.ContentLength > 0 && (resp.Request == nil || resp.Request.Method != http.MethodHead) {
						received = resp.ContentLength
					}
				}
				obs.S3Attempt(middleware.GetOperationName(ctx), status, time.Since(start), sent, received, retry)
				return out, md, err
			}), middleware.After)
	}
}
