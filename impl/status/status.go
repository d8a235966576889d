// Package status owns what a mount tells `mount-s3 status` and `mount-s3 sync --flush`: the
// summary of what a mount is and owes the bucket, the entries behind it (pending changes,
// renames in progress, lost+found), a flush's progress and its outcome, and how each is
// printed for a person. The mount sends them as JSON lines (Line) over its control socket
// (impl/control), so a report has no size limit: entries are streamed, never held whole.
package status

import (
	"fmt"
	"io"
	"time"
)

// Summary is the first thing `mount-s3 status` prints: counts, never lists, so that it costs
// the same with a million pending changes as with one.
type Summary struct {
	Mode    string `json:"mode"` // "streaming" or "sync"
	Bucket  string `json:"bucket"`
	Prefix  string `json:"prefix"`
	SyncDir string `json:"sync_dir,omitempty"`
	// Both modes: objects written since the mount started, and failed attempts (sync mode
	// retries them; in streaming mode the program saw the error).
	Uploads     uint64    `json:"uploads"`
	Failures    uint64    `json:"failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Sync mode only.
	Conflicts      uint64    `json:"conflicts,omitempty"`       // conflicts the bucket won (C4, C6)
	PendingUploads int       `json:"pending_uploads,omitempty"` // changed files the bucket lacks
	PendingBytes   int64     `json:"pending_bytes,omitempty"`   // their size
	Uploading      int       `json:"uploading,omitempty"`       // of which being written now
	PendingDeletes int       `json:"pending_deletes,omitempty"`
	Renames        int       `json:"renames,omitempty"` // copies+deletes in progress (Y9)
	OldestPending  time.Time `json:"oldest_pending,omitzero"`
	Importing      int       `json:"importing,omitempty"` // background imports queued or running (Y1, Y3)
	LostFound      int       `json:"lost_found,omitempty"`
	LostFoundBytes int64     `json:"lost_found_bytes,omitempty"`
}

// Pending is a file (or a delete) the bucket does not have yet.
type Pending struct {
	Path       string    `json:"path"`
	Deleted    bool      `json:"deleted,omitempty"`
	Size       int64     `json:"size,omitempty"`
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

// Progress is a running flush, sent about every half second.
type Progress struct {
	Done     uint64        `json:"done"`  // uploads, deletes and renames finished since the flush began
	Total    uint64        `json:"total"` // Done plus what remains, as far as the mount knows now
	Bytes    int64         `json:"bytes"` // data uploaded since the flush began
	Elapsed  time.Duration `json:"elapsed_ns"`
	Failures uint64        `json:"failures,omitempty"` // failed attempts since the flush began (retried)
	Retrying string        `json:"retrying,omitempty"` // the last failure, in words
}

// Conflict is one conflict the bucket won during a flush.
type Conflict struct {
	Path      string `json:"path"`
	LostFound string `json:"lost_found,omitempty"` // where the local version went; "" if nothing was kept
	What      string `json:"what"`
}

// FlushResult is how a flush ended.
type FlushResult struct {
	Uploaded  uint64        `json:"uploaded"`
	Deleted   uint64        `json:"deleted"`
	Renamed   uint64        `json:"renamed"`
	Bytes     int64         `json:"bytes"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Conflicts []Conflict    `json:"conflicts,omitempty"`
	// ConflictsNotListed counts conflicts beyond the ones the mount still remembers.
	ConflictsNotListed uint64 `json:"conflicts_not_listed,omitempty"`
	// Failed, if set, says in words why the flush stopped before the bucket had everything;
	// StoreFailed says the store (not the local disk) is the cause.
	Failed      string `json:"failed,omitempty"`
	StoreFailed bool   `json:"store_failed,omitempty"`
}

// Line is one line of what the mount sends: exactly one field is set. An answer ends with a
// line with End (or Error) set.
type Line struct {
	Summary   *Summary     `json:"summary,omitempty"`
	Pending   *Pending     `json:"pending,omitempty"`
	Rename    *Rename      `json:"rename,omitempty"`
	LostFound *LostFound   `json:"lost_found,omitempty"`
	Progress  *Progress    `json:"progress,omitempty"`
	Result    *FlushResult `json:"result,omitempty"`
	Error     string       `json:"error,omitempty"`
	End       bool         `json:"end,omitempty"`
}

// PrintSummary writes s for a person: ages relative to now.
func PrintSummary(w io.Writer, s Summary, now time.Time) {
	prefix := s.Prefix
	if prefix == "" {
		prefix = "(whole bucket)"
	}
	fmt.Fprintf(w, "mode:       %s\nbucket:     %s\nprefix:     %s\n", s.Mode, s.Bucket, prefix)
	if s.Mode != "sync" {
		fmt.Fprintf(w, "uploads:    %d done, %d failed (the program saw an error at close)\n", s.Uploads, s.Failures)
		printLastError(w, s, now)
		return
	}
	fmt.Fprintf(w, "sync dir:   %s\n", s.SyncDir)
	oldest := ""
	if !s.OldestPending.IsZero() {
		oldest = fmt.Sprintf("; oldest waiting %s", age(now, s.OldestPending))
	}
	uploading := ""
	if s.Uploading > 0 {
		uploading = fmt.Sprintf(", %d being written now", s.Uploading)
	}
	fmt.Fprintf(w, "pending:    %d uploads (%s%s), %d deletes, %d renames in progress%s\n",
		s.PendingUploads, Bytes(s.PendingBytes), uploading, s.PendingDeletes, s.Renames, oldest)
	if s.Importing > 0 {
		fmt.Fprintf(w, "importing:  %d files' data or attributes in the background\n", s.Importing)
	}
	fmt.Fprintf(w, "written:    %d uploads, deletes and renames done since the mount started; %d failed attempts (retried)\n", s.Uploads, s.Failures)
	fmt.Fprintf(w, "conflicts:  %d since the mount started; lost+found holds %d files (%s)\n", s.Conflicts, s.LostFound, Bytes(s.LostFoundBytes))
	printLastError(w, s, now)
}

func printLastError(w io.Writer, s Summary, now time.Time) {
	if s.LastError == "" {
		return
	}
	when := ""
	if !s.LastErrorAt.IsZero() {
		when = fmt.Sprintf(" (%s ago)", age(now, s.LastErrorAt))
	}
	fmt.Fprintf(w, "last error: %s%s\n", s.LastError, when)
}

// PrintEntry writes one entry of `status --all` (a Line with Pending, Rename or LostFound).
func PrintEntry(w io.Writer, l Line, now time.Time) {
	switch {
	case l.Pending != nil:
		p := l.Pending
		what := "changed, " + Bytes(p.Size)
		if p.Deleted {
			what = "deleted"
		}
		if p.Uploading {
			what += ", being written"
		}
		fmt.Fprintf(w, "pending     /%s  (%s, waiting %s)\n", p.Path, what, age(now, p.DirtySince))
	case l.Rename != nil:
		fmt.Fprintf(w, "renaming    %s -> %s  (queued %s ago)\n", l.Rename.From, l.Rename.To, age(now, l.Rename.Queued))
	case l.LostFound != nil:
		fmt.Fprintf(w, "lost+found  /%s  (was /%s, %s)\n", l.LostFound.Path, l.LostFound.OriginalPath, Bytes(l.LostFound.Size))
	}
}

// ProgressLine is a flush's progress on one line, for a terminal.
func ProgressLine(p Progress) string {
	rate := ""
	if sec := p.Elapsed.Seconds(); sec >= 1 {
		rate = fmt.Sprintf(", %s/s", Bytes(int64(float64(p.Bytes)/sec)))
	}
	s := fmt.Sprintf("flushing: %d/%d changes written, %s%s, %s", p.Done, p.Total, Bytes(p.Bytes), rate, p.Elapsed.Round(time.Second))
	if p.Retrying != "" {
		s += "; retrying after: " + p.Retrying
	}
	return s
}

// PrintResult writes how a flush ended.
func PrintResult(w io.Writer, r FlushResult) {
	if r.Failed == "" && r.Uploaded+r.Deleted+r.Renamed == 0 && len(r.Conflicts) == 0 && r.ConflictsNotListed == 0 {
		fmt.Fprintln(w, "flushed: nothing was pending; the bucket has every change")
		return
	}
	state := "flushed"
	if r.Failed != "" {
		state = "flush stopped"
	}
	fmt.Fprintf(w, "%s: %d uploaded (%s), %d deleted, %d renamed in %s\n", state, r.Uploaded, Bytes(r.Bytes), r.Deleted, r.Renamed, r.Elapsed.Round(time.Millisecond))
	if n := uint64(len(r.Conflicts)) + r.ConflictsNotListed; n > 0 {
		fmt.Fprintf(w, "conflicts: %d; the bucket's version won each (the mount's log has every one):\n", n)
		for _, c := range r.Conflicts {
			if c.LostFound != "" {
				fmt.Fprintf(w, "  /%s: the local version is now /%s\n", c.Path, c.LostFound)
			} else {
				fmt.Fprintf(w, "  /%s: %s\n", c.Path, c.What)
			}
		}
		if r.ConflictsNotListed > 0 {
			fmt.Fprintf(w, "  ... and %d more\n", r.ConflictsNotListed)
		}
	}
	if r.Failed != "" {
		fmt.Fprintf(w, "error: %s\n", r.Failed)
	}
}

// Bytes is n in binary units, as a person reads them.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return max(now.Sub(t).Round(time.Second), 0).String()
}
