package streamfs

import "github.com/mount-s3/mount-s3/impl/vfs"

// storeError classifies an error from the store (vfs.Classify).
func storeError(op, path string, err error) *vfs.Error {
	return &vfs.Error{Op: op, Path: path, Code: vfs.Classify(err), Err: err}
}
