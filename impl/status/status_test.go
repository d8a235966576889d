package status

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A report of a million pending changes still fits the 64 KiB an extended attribute carries:
// the totals are exact and the oldest entries are listed (issue 15: `status` failed with
// "argument list too long" from about 700 pending changes).
func TestEncodeBoundedMillionPending(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	r := Report{Mode: "sync", Bucket: "b"}
	for i := 0; i < 1_000_000; i++ {
		r.Pending = append(r.Pending, Pending{Path: fmt.Sprintf("dir/some/longish/path/file-%07d", i), DirtySince: now.Add(time.Duration(i) * time.Millisecond)})
	}
	r.Renames = []Rename{{From: "a", To: "b", Queued: now}}
	b, err := EncodeBounded(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxEncoded {
		t.Fatalf("encoded %d bytes, over %d", len(b), MaxEncoded)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.PendingTotal != 1_000_000 || got.RenamesTotal != 1 || !got.OldestPending.Equal(now) || len(got.Pending) == 0 {
		t.Fatalf("totals %d %d oldest %v listed %d", got.PendingTotal, got.RenamesTotal, got.OldestPending, len(got.Pending))
	}
	if got.Pending[0].Path != "dir/some/longish/path/file-0000000" {
		t.Fatalf("the oldest is not listed first: %s", got.Pending[0].Path)
	}
	var out bytes.Buffer
	Print(&out, got, now.Add(time.Hour))
	text := out.String()
	for _, want := range []string{"pending:   1000000 changes (oldest 1h0m0s ago), 1 renames in progress, 0 files in lost+found",
		fmt.Sprintf("... and %d more", 1_000_000-len(got.Pending))} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%.600s", want, text)
		}
	}
	if i := strings.Index(text, "pending:"); i < 0 || i > strings.Index(text, "pending write-back") {
		t.Errorf("the summary does not come first:\n%.400s", text)
	}
}
