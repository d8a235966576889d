package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// crashSettings: CRASH_CYCLES (default 4), CRASH_SEED (default 1), CRASH_DIR_FILES, the size of
// the directory that is renamed whole (default 100; make crash uses 1,000).
func crashSettings(t *testing.T) (cycles int, seed uint64, dirFiles int) {
	cycles, seed, dirFiles = 4, 1, 100
	for env, p := range map[string]*int{"CRASH_CYCLES": &cycles, "CRASH_DIR_FILES": &dirFiles} {
		if v := os.Getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			require.NoError(t, err, env)
			*p = n
		}
	}
	if v := os.Getenv("CRASH_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "CRASH_SEED")
		seed = s
	}
	return cycles, seed, dirFiles
}

// crashRig is one sync dir and bucket that live across the cycles, and the model of what the
// mount must show: every version whose close (or rename, or unlink) returned before the kill.
type crashRig struct {
	top     *testing.T // mounts live across cycles: their cleanup is the whole test's
	t       *testing.T
	srv     harness.Endpoint
	store   s3.Store
	syncDir string
	m       *harness.Mount
	model   map[string]Version // path → the closed version it must show
	dirName string             // the big directory's current name: "big" or "big2"
	remote  int                // versions put by "another client"
	// importDir is the last import cycle's directory, removed by the next one.
	importDir string
	rng       *rand.Rand
	full      bool // check the big directory's files this cycle
}

// skip: p is in the big directory and this cycle does not check it.
func (r *crashRig) skip(p string) bool {
	return !r.full && (strings.HasPrefix(p, "big/") || strings.HasPrefix(p, "big2/"))
}

func (r *crashRig) mount() {
	r.m = harness.MountServer(r.top, r.srv, r.store, harness.Options{Args: []string{
		"--sync-dir", r.syncDir, "--write-back-delay", "0", "--write-part-size", "5242880", "--poll-interval", "1s"}})
}

// TestCrashCycles kills a sync mount with SIGKILL at a random moment of one of four
// activities (write-back of new and edited files, write-back of a renamed directory of many
// files, an import of objects another client wrote, conflict moves to lost+found), mounts the
// same sync dir again and checks the invariants of docs/SYNC-MODE.md:
//
//   - every file whose close, rename or unlink returned before the kill shows exactly that,
//   - once flushed, the bucket holds exactly what the mount shows, each object whole,
//   - every version a program closed or another client wrote is in the bucket or in
//     lost+found, and lost+found holds only whole versions,
//   - no multipart upload is left open.
func TestCrashCycles(t *testing.T) {
	cycles, seed, dirFiles := crashSettings(t)
	srv, store := harness.NewServer(t)
	r := &crashRig{top: t, t: t, srv: srv, store: store, syncDir: t.TempDir(), model: map[string]Version{},
		dirName: "big", rng: rand.New(rand.NewPCG(seed, 7))}
	r.mount()
	// The big directory, made once and renamed back and forth by the rename cycles.
	require.NoError(t, os.Mkdir(r.m.Path("big"), 0o755))
	for i := 0; i < dirFiles; i++ {
		p := fmt.Sprintf("big/f%04d", i)
		v := Version{Tag: fmt.Sprintf("big%d", i), Ver: 1}
		require.NoError(t, writeFile(r.m.Path(p), os.O_WRONLY|os.O_CREATE|os.O_EXCL, Content(v.Tag, v.Ver, 100+i)))
		r.model[p] = v
	}
	require.NoError(t, os.Mkdir(r.m.Path("w"), 0o755))
	r.full = true
	r.flushAndCheck(0, nil, nil)
	for c := 1; c <= cycles; c++ {
		kind := []string{"write-back", "dir-rename", "import", "conflict"}[r.rng.IntN(4)]
		if !t.Run(fmt.Sprintf("cycle=%d/%s", c, kind), func(t *testing.T) { r.cycle(t, c, kind) }) {
			t.Fatalf("cycle %d (%s) failed; replay with CRASH_SEED=%d CRASH_CYCLES=%d CRASH_DIR_FILES=%d", c, kind, seed, c, dirFiles)
		}
	}
}

func (r *crashRig) cycle(t *testing.T, c int, kind string) {
	r.t = t
	delay := time.Duration(r.rng.IntN(800)) * time.Millisecond
	uncertain := map[string]bool{}
	var mu sync.Mutex
	// lost: versions that must end up in lost+found or the bucket (conflicts).
	lost := map[Version]bool{}
	// conflicted are the paths of a conflict cycle: after the remount the mount may show this
	// mount's version until the resumed write-back finds the conflict, and then the bucket's;
	// they are settled from the bucket after the flush.
	conflicted := map[string]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	rng := rand.New(rand.NewPCG(r.rng.Uint64(), uint64(c)))

	switch kind {
	case "import":
		// The previous import's directory is removed through the mount first, so the model
		// (read back in full after every cycle) stays the same size over a thousand cycles,
		// and its deletes are write-back that the kill may interrupt.
		if r.importDir != "" {
			require.NoError(t, os.RemoveAll(r.m.Path(r.importDir)))
			for p := range r.model {
				if strings.HasPrefix(p, r.importDir+"/") {
					delete(r.model, p)
				}
			}
		}
		// Another client writes objects; the mount lists and reads them while importing.
		dir := fmt.Sprintf("imp%d", c)
		r.importDir = dir
		for i := 0; i < 40; i++ {
			r.remote++
			v := Version{Tag: fmt.Sprintf("remote%d", r.remote), Ver: 1}
			key := fmt.Sprintf("%s/o%02d", dir, i)
			data := Content(v.Tag, v.Ver, 1+rng.IntN(300<<10))
			_, err := r.store.Put(context.Background(), key, strings.NewReader(string(data)), int64(len(data)), s3.WriteOptions{})
			require.NoError(t, err)
			r.model[key] = v
		}
		// Another client's new directory shows once a poll sees it (C2, --poll-interval 1s).
		require.Eventually(t, func() bool { _, err := os.Stat(r.m.Path(dir)); return err == nil }, 10*time.Second, 50*time.Millisecond,
			"the new remote directory %s never showed", dir)
		go func() {
			defer close(done)
			ents, _ := os.ReadDir(r.m.Path(dir))
			for _, e := range ents {
				select {
				case <-stop:
					return
				default:
				}
				os.ReadFile(r.m.Path(dir + "/" + e.Name()))
			}
		}()
	case "conflict":
		// Files synced earlier are edited here and replaced in the bucket by another client;
		// a flush runs the conditional uploads that find the conflicts.
		var clean []string
		for p := range r.model {
			if strings.HasPrefix(p, "w/") {
				clean = append(clean, p)
			}
		}
		sort.Strings(clean)
		rng.Shuffle(len(clean), func(i, j int) { clean[i], clean[j] = clean[j], clean[i] })
		clean = clean[:min(len(clean), 6)]
		for _, p := range clean {
			v := r.model[p]
			base, err := r.store.Head(context.Background(), p)
			require.NoError(t, err)
			mine := Version{Tag: v.Tag, Ver: v.Ver + 1}
			require.NoError(t, writeFile(r.m.Path(p), os.O_WRONLY|os.O_TRUNC, Content(mine.Tag, mine.Ver, 1+rng.IntN(100<<10))))
			lost[mine] = true
			// The other client follows the rules too (C3): it replaces the version it read,
			// so it fails if this mount's upload came first. What it wrote must then survive
			// as well as what this mount closed: one in the bucket, the other in lost+found.
			r.remote++
			theirs := Version{Tag: fmt.Sprintf("remote%d", r.remote), Ver: 1}
			data := Content(theirs.Tag, theirs.Ver, 1+rng.IntN(100<<10))
			_, err = r.store.Put(context.Background(), p, strings.NewReader(string(data)), int64(len(data)), s3.WriteOptions{IfMatch: base.ETag})
			if !errors.Is(err, s3.ErrPreconditionFailed) {
				require.NoError(t, err)
				lost[theirs] = true
			}
			conflicted[p] = true
			delete(r.model, p)
		}
		go func() {
			defer close(done)
			harness.Flush(t, r.m.Dir)
		}()
	case "dir-rename":
		to := map[string]string{"big": "big2", "big2": "big"}[r.dirName]
		go func() {
			defer close(done)
			err := os.Rename(r.m.Path(r.dirName), r.m.Path(to))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				return // killed before the rename returned: either name is fine
			}
			for p, v := range r.model {
				if rest, ok := strings.CutPrefix(p, r.dirName+"/"); ok {
					delete(r.model, p)
					r.model[to+"/"+rest] = v
				}
			}
			r.dirName = to
		}()
	default: // write-back
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("w/f%02d", rng.IntN(30))
				v := r.model[p]
				v = Version{Tag: tagOf(p), Ver: v.Ver + 1}
				mu.Lock()
				uncertain[p] = true
				mu.Unlock()
				var err error
				switch {
				case rng.IntN(6) == 0:
					err = os.Remove(r.m.Path(p))
					if errors.Is(err, os.ErrNotExist) {
						err = nil
					}
					if err == nil {
						mu.Lock()
						delete(r.model, p)
						delete(uncertain, p)
						mu.Unlock()
					}
				default:
					err = writeFile(r.m.Path(p), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, Content(v.Tag, v.Ver, size(rng)))
					if err == nil {
						mu.Lock()
						r.model[p] = v
						delete(uncertain, p)
						mu.Unlock()
					}
				}
				if err != nil {
					return // the kill
				}
			}
		}()
	}

	time.Sleep(delay)
	r.m.Kill(t)
	close(stop)
	<-done
	r.m.Unmount(t) // detach the dead mount's directory
	r.mount()

	mu.Lock()
	defer mu.Unlock()
	// What was in flight at the kill may be either state; adopt what the mount shows if it is
	// a whole version, else remove it (a file a program never closed may hold anything).
	for p := range uncertain {
		b, err := os.ReadFile(r.m.Path(p))
		v, verr := Verify(b)
		switch {
		case errors.Is(err, os.ErrNotExist):
			delete(r.model, p)
		case err == nil && verr == nil:
			r.model[p] = v
		default:
			require.NoError(t, os.Remove(r.m.Path(p)), "removing %s", p)
			delete(r.model, p)
		}
	}
	// The big directory's files are read back only after the cycles that moved them, and every
	// tenth: reading a thousand files each cycle would make a thousand cycles take hours.
	r.full = kind == "dir-rename" || c%10 == 0
	r.checkMount(t)
	r.flushAndCheck(c, lost, conflicted)
}

// checkMount: every path of the model shows its version.
func (r *crashRig) checkMount(t *testing.T) {
	for p, v := range r.model {
		if r.skip(p) {
			continue
		}
		b, err := os.ReadFile(r.m.Path(p))
		require.NoError(t, err, "%s (closed as %s) after the remount", p, v)
		got, verr := Verify(b)
		require.NoError(t, verr, "%s after the remount", p)
		require.Equal(t, v, got, "%s after the remount", p)
	}
}

// flushAndCheck writes everything back and checks the bucket against the mount, lost+found,
// and the versions in lost (each in the bucket or in lost+found).
func (r *crashRig) flushAndCheck(c int, lost map[Version]bool, conflicted map[string]bool) {
	t := r.t
	var out []byte
	var err error
	for i := 0; i < 30; i++ {
		if out, err = harness.Flush(t, r.m.Dir); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	require.NoError(t, err, "flush: %s\n%s", out, r.m.Logs())

	// A conflict's path now shows the bucket's version (C4), or nothing if it was deleted.
	for p := range conflicted {
		if b, err := getObject(context.Background(), r.store, p); err == nil {
			v, verr := Verify(b)
			require.NoError(t, verr, "%s in the bucket", p)
			r.model[p] = v
		}
	}
	seen := map[Version]bool{}
	// The bucket equals the mount for every model path, and holds nothing else (but markers).
	objs := listKeys(t, r.store, "")
	for p := range r.model {
		if r.skip(p) {
			seen[r.model[p]] = true
			continue
		}
		b, err := getObject(context.Background(), r.store, p)
		require.NoError(t, err, "%s in the bucket", p)
		v, verr := Verify(b)
		require.NoError(t, verr, "%s in the bucket", p)
		// The kernel may keep a replaced file's old attributes and pages for its timeout (1 s)
		// after a conflict gave the path the bucket's version (C2, C4).
		var mv Version
		require.Eventually(t, func() bool {
			mb, err := os.ReadFile(r.m.Path(p))
			mv, _ = Verify(mb)
			return err == nil && mv == v
		}, 5*time.Second, 100*time.Millisecond, "%s: the mount shows %s, the bucket %s after the flush", p, &mv, v)
		r.model[p] = v // a conflict may have given the path the bucket's version
		seen[v] = true
	}
	for k := range objs {
		if _, ok := r.model[k]; !ok && !strings.HasSuffix(k, "/") {
			b, _ := os.ReadFile(r.m.Path(k))
			require.Failf(t, "stray object", "%s is in the bucket but not in the model (the mount shows %d bytes)", k, len(b))
		}
	}
	// lost+found holds whole versions only.
	ents, err := os.ReadDir(r.m.Dir)
	require.NoError(t, err)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), syncrule.LostFoundDirPrefix) {
			continue
		}
		files, err := os.ReadDir(filepath.Join(r.m.Dir, e.Name()))
		require.NoError(t, err)
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(r.m.Dir, e.Name(), f.Name()))
			require.NoError(t, err)
			v, verr := Verify(b)
			require.NoError(t, verr, "lost+found/%s", f.Name())
			seen[v] = true
		}
	}
	for v := range lost {
		require.True(t, seen[v], "cycle %d: %s was closed or written by another client but is neither in the bucket nor in lost+found", c, v)
	}
	ups, err := r.store.ListMultipartUploads(context.Background(), "")
	require.NoError(t, err)
	require.Empty(t, ups, "multipart uploads left open")
}

// TestCorruptMetadataRecovery: a sync dir whose database is damaged makes the mount refuse
// with the command that recovers it; `mount-s3 sync --recover` sets it aside without losing the
// change that had not reached the bucket, and the next mount imports the bucket afresh.
func TestCorruptMetadataRecovery(t *testing.T) {
	srv, store := harness.NewServer(t)
	syncDir := filepath.Join(t.TempDir(), "sync")
	args := []string{"--sync-dir", syncDir, "--write-back-delay", "1h"}
	m := harness.MountServer(t, srv, store, harness.Options{Args: args})
	require.NoError(t, os.WriteFile(m.Path("synced"), []byte("in the bucket"), 0o644))
	out, err := harness.Flush(t, m.Dir)
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.WriteFile(m.Path("pending"), []byte("only here"), 0o644))
	m.Unmount(t)

	db := filepath.Join(syncDir, "meta.db")
	require.NoError(t, os.WriteFile(db, []byte(strings.Repeat("damaged ", 1000)), 0o600))
	cmd := exec.Command(harness.Binary(t), "--foreground", "--endpoint-url", srv.URL(), "--force-path-style",
		"--region", "us-east-1", "--sync-dir", syncDir, store.Bucket(), t.TempDir())
	cmd.Env = harness.Env(srv)
	out, err = cmd.CombinedOutput()
	require.Error(t, err, "a damaged database must be refused: %s", out)
	require.Contains(t, string(out), "mount-s3 sync --recover "+syncDir, "the refusal names the recovery")

	out, err = exec.Command(harness.Binary(t), "sync", "--recover", syncDir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "nothing was deleted")
	// The database could not be read: the data files are listed by id; the one that holds
	// "only here" must be among them.
	var found string
	for _, line := range strings.Split(string(out)+readReport(t, syncDir), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], syncDir+".broken-") {
			if b, err := os.ReadFile(f[0]); err == nil && string(b) == "only here" {
				found = f[0]
			}
		}
	}
	require.NotEmpty(t, found, "the unsent change is kept and listed:\n%s", out)

	m2 := harness.MountServer(t, srv, store, harness.Options{Args: args})
	b, err := os.ReadFile(m2.Path("synced"))
	require.NoError(t, err, "the bucket is imported afresh")
	require.Equal(t, "in the bucket", string(b))
	data, err := os.ReadFile(found)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(m2.Path("pending"), data, 0o644))
	out, err = harness.Flush(t, m2.Dir)
	require.NoError(t, err, "%s", out)
	got, err := getObject(context.Background(), store, "pending")
	require.NoError(t, err)
	require.Equal(t, "only here", string(got))
}

func readReport(t *testing.T, syncDir string) string {
	matches, _ := filepath.Glob(syncDir + ".broken-*/RECOVERED.txt")
	require.Len(t, matches, 1)
	b, err := os.ReadFile(matches[0])
	require.NoError(t, err)
	return string(b)
}
