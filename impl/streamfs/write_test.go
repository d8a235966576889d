package streamfs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/streamfs"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/impl/write"
)

func TestWriteFailureIsReported(t *testing.T) {
	ctx := context.Background()
	x := newFixture(t, "", nil)
	faults := s3.NewFaults(x.store)
	faults.FailNth("UploadPart", 2, s3.ErrAccessDenied)
	f, err := streamfs.New(streamfs.Config{Store: faults, Clock: clock.NewFake(time.Unix(1, 0)), MetadataTTL: time.Second, Upload: write.Config{PartSize: 5 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	_, h, err := f.Create(ctx, vfs.RootID, "big", 0o644, vfs.Caller{Pid: 7})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	var failed error
	for off := int64(0); off < 30<<20 && failed == nil; off += int64(len(chunk)) {
		failed = f.Write(ctx, h, off, chunk)
	}
	if failed == nil {
		failed = f.Flush(ctx, h, 7)
	}
	f.Release(h)
	if vfs.CodeOf(failed) != vfs.CodeIO && vfs.CodeOf(failed) != vfs.CodeAccess {
		t.Fatalf("got %v (code %v), want an I/O error", failed, vfs.CodeOf(failed))
	}
	if _, err := x.store.Head(ctx, "big"); !errors.Is(err, s3.ErrNotFound) {
		t.Fatalf("object left behind: %v", err)
	}
}
