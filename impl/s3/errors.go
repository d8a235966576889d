package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// errorCodes maps S3 error codes to the typed errors. Codes win over HTTP status because
// one status covers several meanings (404 is both NoSuchKey and NoSuchBucket).
var errorCodes = map[string]error{
	"NoSuchKey":                  ErrNotFound,
	"NotFound":                   ErrNotFound,
	"NoSuchUpload":               ErrNotFound,
	"NoSuchBucket":               ErrNoSuchBucket,
	"AccessDenied":               ErrAccessDenied,
	"Forbidden":                  ErrAccessDenied,
	"InvalidAccessKeyId":         ErrAccessDenied,
	"SignatureDoesNotMatch":      ErrAccessDenied,
	"AllAccessDisabled":          ErrAccessDenied,
	"ExpiredToken":               ErrAccessDenied,
	"InvalidToken":               ErrAccessDenied,
	"AccountProblem":             ErrAccessDenied,
	"PreconditionFailed":         ErrPreconditionFailed,
	"ConditionalRequestConflict": ErrPreconditionFailed, // a racing conditional write won
	"InvalidRange":               ErrInvalidRange,
	"SlowDown":                   ErrThrottled,
	"Throttling":                 ErrThrottled,
	"ThrottlingException":        ErrThrottled,
	"RequestLimitExceeded":       ErrThrottled,
	"TooManyRequestsException":   ErrThrottled,
	"ServiceUnavailable":         ErrThrottled,
	"KeyTooLongError":            ErrInvalidKey,
	"XMinioInvalidObjectName":    ErrInvalidKey,
	"InvalidObjectName":          ErrInvalidKey,
	"XMinioInvalidResourceName":  ErrInvalidKey,
}

// Responses without a body (HEAD, some proxies) carry no error code; the status is all
// there is.
var errorStatuses = map[int]error{
	http.StatusNotFound:                     ErrNotFound,
	http.StatusForbidden:                    ErrAccessDenied,
	http.StatusPreconditionFailed:           ErrPreconditionFailed,
	http.StatusRequestedRangeNotSatisfiable: ErrInvalidRange,
	http.StatusTooManyRequests:              ErrThrottled,
	http.StatusServiceUnavailable:           ErrThrottled,
}

// mapError wraps err with the operation and key and, where one applies, a typed error.
// The SDK error stays in the chain so its details (request id, status) reach the logs.
func mapError(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if typed := classify(err); typed != nil {
		return fmt.Errorf("s3 %s %q: %w: %w", op, key, typed, err)
	}
	return fmt.Errorf("s3 %s %q: %w", op, key, err)
}

func classify(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if typed, ok := errorCodes[apiErr.ErrorCode()]; ok {
			return typed
		}
	}
	if typed, ok := errorStatuses[httpStatus(err)]; ok {
		return typed
	}
	return nil
}

func httpStatus(err error) int {
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		return respErr.HTTPStatusCode()
	}
	return 0
}

func isHTTPStatus(err error, status int) bool { return httpStatus(err) == status }

// regionHint returns the bucket's real region when S3 redirected us because we asked the
// wrong one, so start-up can say which --region to use.
func regionHint(err error) string {
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil && respErr.HTTPStatusCode() == http.StatusMovedPermanently {
		return respErr.Response.Header.Get("X-Amz-Bucket-Region")
	}
	return ""
}

func isNetworkError(err error) bool {
	var netErr net.Error
	var opErr *net.OpError
	return errors.As(err, &netErr) || errors.As(err, &opErr)
}
