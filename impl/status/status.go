// Package status owns the report `mount-s3 status MNT` prints: what a mount is (mode, bucket,
// prefix) and, in sync mode, what it still owes the bucket and what it set aside in
// lost+found. The mount serves it as JSON through the control attribute StatusXattr on its
// root, so the command needs no socket and no process lookup.
package status

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"
)

// StatusXattr is read on a mount's root to get its Report as JSON.
const StatusXattr = "user.mount-s3.status"

// Report is the state of one mount.
type Report struct {
	Mode    string `json:"mode"` // "streaming" or "sync"
	Bucket  string `json:"bucket"`
	Prefix  string `json:"prefix"`
	SyncDir string `json:"sync_dir,omitempty"`
	// Sync mode only: Pending, Renames, LostFound and Conflicts.
	Pending   []Pending   `json:"pending,omitempty"`    // changed files not yet in the bucket
	Renames   []Rename    `json:"renames,omitempty"`    // copies+deletes in progress (Y9)
	LostFound []LostFound `json:"lost_found,omitempty"` // local versions that lost a conflict (C4)
	// Both modes: objects written, and failed attempts (sync mode retries them; in streaming
	// mode the program saw the error).
	Uploads   uint64 `json:"uploads"`
	Failures  uint64 `json:"failures"`
	Conflicts uint64 `json:"conflicts"`
	LastError string `json:"last_error,omitempty"`
	// Totals of the lists above, which hold only the oldest entries when there are many (the
	// report travels in one extended attribute, and the kernel caps those at 64 KiB).
	PendingTotal   int       `json:"pending_total,omitempty"`
	RenamesTotal   int       `json:"renames_total,omitempty"`
	LostFoundTotal int       `json:"lost_found_total,omitempty"`
	OldestPending  time.Time `json:"oldest_pending,omitempty"`
}

// MaxEncoded bounds an encoded report, under the kernel's 64 KiB for an extended attribute.
const MaxEncoded = 48 << 10

// EncodeBounded encodes r, keeping only as many of the oldest pending entries, renames and
// lost+found files as fit in MaxEncoded; the totals say how many there are.
func EncodeBounded(r Report) ([]byte, error) {
	sort.Slice(r.Pending, func(i, j int) bool { return r.Pending[i].DirtySince.Before(r.Pending[j].DirtySince) })
	sort.Slice(r.Renames, func(i, j int) bool { return r.Renames[i].Queued.Before(r.Renames[j].Queued) })
	r.PendingTotal, r.RenamesTotal, r.LostFoundTotal = len(r.Pending), len(r.Renames), len(r.LostFound)
	if len(r.Pending) > 0 {
		r.OldestPending = r.Pending[0].DirtySince
	}
	for {
		b, err := json.Marshal(r)
		if err != nil || len(b) <= MaxEncoded || len(r.Pending)+len(r.Renames)+len(r.LostFound) == 0 {
			return b, err
		}
		r.Pending, r.Renames, r.LostFound = r.Pending[:len(r.Pending)/2], r.Renames[:len(r.Renames)/2], r.LostFound[:len(r.LostFound)/2]
	}
}

// Pending is a file (or a delete) the bucket does not have yet.
type Pending struct {
	Path       string    `json:"path"`
	Deleted    bool      `json:"deleted,omitempty"`
	DirtySince time.Time `json:"dirty_since"`
	Uploading  bool      `json:"uploading,omitempty"`
}

// Rename is a queued copy+delete.
type Rename struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	Queued time.Time `json:"queued"`
}

// LostFound is one file in lost+found.
type LostFound struct {
	Path         string `json:"path"`
	OriginalPath string `json:"original_path"`
	Size         int64  `json:"size"`
}

// Encode is what the mount serves.
func Encode(r Report) ([]byte, error) { return json.Marshal(r) }

// Decode reads what the mount served.
func Decode(b []byte) (Report, error) {
	var r Report
	err := json.Unmarshal(b, &r)
	return r, err
}

// Print writes the report for a person: ages relative to now.
func Print(w io.Writer, r Report, now time.Time) {
	prefix := r.Prefix
	if prefix == "" {
		prefix = "(whole bucket)"
	}
	fmt.Fprintf(w, "mode:      %s\nbucket:    %s\nprefix:    %s\n", r.Mode, r.Bucket, prefix)
	if r.Mode != "sync" {
		fmt.Fprintf(w, "uploads:   %d done, %d failed (the program saw an error at close)\n", r.Uploads, r.Failures)
		if r.LastError != "" {
			fmt.Fprintf(w, "last error: %s\n", r.LastError)
		}
		return
	}
	fmt.Fprintf(w, "sync dir:  %s\nuploads:   %d done, %d failed attempts, %d conflicts\n", r.SyncDir, r.Uploads, r.Failures, r.Conflicts)
	pending, renames, lost := max(r.PendingTotal, len(r.Pending)), max(r.RenamesTotal, len(r.Renames)), max(r.LostFoundTotal, len(r.LostFound))
	oldest := ""
	if !r.OldestPending.IsZero() {
		oldest = fmt.Sprintf(" (oldest %s ago)", age(now, r.OldestPending))
	}
	fmt.Fprintf(w, "pending:   %d changes%s, %d renames in progress, %d files in lost+found\n", pending, oldest, renames, lost)
	if r.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", r.LastError)
	}
	sort.Slice(r.Pending, func(i, j int) bool { return r.Pending[i].DirtySince.Before(r.Pending[j].DirtySince) })
	more := func(listed, total int, what string) {
		if total > listed {
			fmt.Fprintf(w, "  ... and %d more (the report lists the oldest %d %s)\n", total-listed, listed, what)
		}
	}
	fmt.Fprintf(w, "\npending write-back: %d\n", pending)
	for _, p := range r.Pending {
		what := "changed"
		if p.Deleted {
			what = "deleted"
		}
		if p.Uploading {
			what += ", uploading"
		}
		fmt.Fprintf(w, "  /%s  (%s %s ago)\n", p.Path, what, age(now, p.DirtySince))
	}
	more(len(r.Pending), pending, "changes")
	fmt.Fprintf(w, "\nrenames in progress: %d\n", renames)
	for _, m := range r.Renames {
		fmt.Fprintf(w, "  %s -> %s  (queued %s ago)\n", m.From, m.To, age(now, m.Queued))
	}
	more(len(r.Renames), renames, "renames")
	fmt.Fprintf(w, "\nlost+found: %d\n", lost)
	for _, l := range r.LostFound {
		fmt.Fprintf(w, "  /%s  (was /%s, %d bytes)\n", l.Path, l.OriginalPath, l.Size)
	}
	more(len(r.LostFound), lost, "files")
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return max(now.Sub(t).Round(time.Second), 0).String()
}
