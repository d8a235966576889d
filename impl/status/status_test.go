package status

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The summary of a sync mount says, in one screen, what the bucket is owed, what the mount
// set aside and the last failure with its age (issue 15, item 2).
func TestPrintSummary(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	s := Summary{Mode: "sync", Bucket: "b", SyncDir: "/var/sync", Uploads: 7, Failures: 2, Conflicts: 1,
		PendingUploads: 1_000_000, PendingBytes: 3 << 30, Uploading: 4, PendingDeletes: 12, Renames: 1,
		OldestPending: now.Add(-90 * time.Second), Importing: 300, LostFound: 1, LostFoundBytes: 2048,
		LastError: "/a: connection refused", LastErrorAt: now.Add(-5 * time.Second)}
	var out bytes.Buffer
	PrintSummary(&out, s, now)
	for _, want := range []string{
		"prefix:     (whole bucket)",
		"pending:    1000000 uploads (3.0 GiB, 4 being written now), 12 deletes, 1 renames in progress; oldest waiting 1m30s",
		"importing:  300 files",
		"written:    7 uploads, deletes and renames done since the mount started; 2 failed attempts",
		"conflicts:  1 since the mount started; lost+found holds 1 files (2.0 KiB)",
		"last error: /a: connection refused (5s ago)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	out.Reset()
	PrintSummary(&out, Summary{Mode: "streaming", Bucket: "b", Prefix: "p/", Uploads: 3}, now)
	if !strings.Contains(out.String(), "uploads:    3 done, 0 failed") || strings.Contains(out.String(), "last error") {
		t.Errorf("streaming summary:\n%s", out.String())
	}
}

// A flush's end names each conflict with where the local version went, and a failure in
// words (issue 15, item 3).
func TestPrintResult(t *testing.T) {
	var out bytes.Buffer
	PrintResult(&out, FlushResult{Uploaded: 3, Bytes: 1536, Deleted: 1, Elapsed: 1500 * time.Millisecond,
		Conflicts:          []Conflict{{Path: "a.txt", LostFound: ".lost+found-x/a.txt"}, {Path: "b", What: "the local delete of /b was dropped"}},
		ConflictsNotListed: 2})
	for _, want := range []string{"flushed: 3 uploaded (1.5 KiB), 1 deleted, 0 renamed in 1.5s", "conflicts: 4;",
		"  /a.txt: the local version is now /.lost+found-x/a.txt", "  /b: the local delete of /b was dropped", "... and 2 more"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	out.Reset()
	PrintResult(&out, FlushResult{Failed: "cannot reach the store", StoreFailed: true})
	if !strings.HasPrefix(out.String(), "flush stopped: 0 uploaded") || !strings.Contains(out.String(), "error: cannot reach the store") {
		t.Errorf("failed flush:\n%s", out.String())
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	got := ProgressLine(Progress{Done: 5, Total: 10, Bytes: 10 << 20, Elapsed: 2 * time.Second, Retrying: "SlowDown"})
	if want := "flushing: 5/10 changes written, 10.0 MiB, 5.0 MiB/s, 2s; retrying after: SlowDown"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
