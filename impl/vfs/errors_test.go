package vfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// Classify is the one table both cores use from a cause to a Code.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Code
	}{
		{fmt.Errorf("get: %w", s3.ErrNotFound), CodeNotFound},
		{fmt.Errorf("put: %w", s3.ErrAccessDenied), CodeAccess},
		{fmt.Errorf("put: %w", s3.ErrInvalidKey), CodeInvalid},
		{fmt.Errorf("read: %w", context.Canceled), CodeInterrupted},
		{&os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, CodeNoSpace},
		{fmt.Errorf("quota: %w", syscall.EDQUOT), CodeNoSpace},
		{fmt.Errorf("mkdir: %w", syscall.EEXIST), CodeExists},
		{fmt.Errorf("rmdir: %w", syscall.ENOTEMPTY), CodeNotEmpty},
		{fmt.Errorf("name: %w", syscall.ENAMETOOLONG), CodeNameTooLong},
		{errors.New("something else"), CodeIO},
	} {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
