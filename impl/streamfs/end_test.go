package streamfs_test

import (
	"context"
	"testing"

	"github.com/mount-s3/mount-s3/impl/vfs"
)

// End commits a new file its opener closed empty (the kernel dropped its release at the
// unmount), and nothing that may still have been being written.
func TestEndCommitsOnlyFilesClosedEmpty(t *testing.T) {
	ctx := context.Background()
	x := newFixtureWith(t, fixtureOptions{keys: map[string]string{"old": "old bytes"}, overwrite: true})
	const pid = 9
	create := func(name string) vfs.HandleID {
		_, h, err := x.fs.Create(ctx, vfs.RootID, name, 0o644, vfs.Caller{Pid: pid})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	touched := create("touched") // closed empty: its upload waits for the release
	if err := x.fs.Flush(ctx, touched, vfs.PID(pid)); err != nil {
		t.Fatal(err)
	}
	writing := create("writing") // `prog > f`: a close of the first descriptor, then writes
	if err := x.fs.Flush(ctx, writing, vfs.PID(pid)); err != nil {
		t.Fatal(err)
	}
	if err := x.fs.Write(ctx, writing, 0, []byte("first half")); err != nil {
		t.Fatal(err)
	}
	neverClosed := create("never-closed")
	old, err := x.fs.Lookup(ctx, vfs.RootID, "old")
	if err != nil {
		t.Fatal(err)
	}
	truncated, err := x.fs.Open(ctx, old.Attr.Inode, vfs.OpenFlags{Write: true, Trunc: true}, vfs.PID(pid))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.fs.Flush(ctx, truncated, vfs.PID(pid)); err != nil {
		t.Fatal(err)
	}

	x.fs.End()

	if _, err := x.store.Head(ctx, "touched"); err != nil {
		t.Errorf("the file closed empty is not in the bucket after End: %v", err)
	}
	for _, key := range []string{"writing", "never-closed"} {
		if _, err := x.store.Head(ctx, key); err == nil {
			t.Errorf("%s was committed by End while it may still have been written", key)
		}
	}
	if info, err := x.store.Head(ctx, "old"); err != nil || info.Size != int64(len("old bytes")) {
		t.Errorf("the object an O_TRUNC open was replacing: %+v, %v; want it as it was", info, err)
	}
	for _, h := range []vfs.HandleID{touched, writing, neverClosed, truncated} {
		x.fs.Release(h)
	}
}
