package conformance

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/model"
)

// TestModel is the model-vs-mount property test of streaming mode: rapid generates random
// sequences of operations, each runs on the reference model (spec/model) and on a real mount
// of a fresh embedded bucket, every result and errno must be the same, and after each step
// the whole tree the mount shows (raw getdents and lstat of every entry: names, order,
// d_types, kinds, file sizes) must be the model's.
//
// Names come from a small adversarial alphabet so that collisions, shadowing (K4), hidden keys
// (K3) and keys outside the prefix (K8) happen often; another client's puts and deletes are
// made in the bucket behind the mount's back.
//
// The mount runs with --metadata-ttl 0 and --negative-metadata-ttl 0, so neither it nor the
// kernel caches metadata (S3) and a change in the bucket shows at the next step. Before each
// comparison the test waits until the kernel has no request outstanding at the mount
// (fusectl's "waiting"): close(2) returns before the kernel's release reaches the mount, and a
// file closed without being written is committed at release (S5).
//
// Number of sequences: 200, or $MOUNT_S3_MODEL_CHECKS, or -rapid.checks (which
// `make conformance RAPID_CHECKS=n` passes). A failure prints the shrunk sequence of steps;
// the first failing sequence is also printed as it was, with the mount's log, since a failure
// that depends on timing may not shrink.
//
// $MOUNT_S3_MODEL_AVOID lists known mount bugs (see knownBugs) whose sequences are not
// generated, to check that nothing else fails while they are being fixed; by default none.
func TestModel(t *testing.T) {
	harness.SkipOnQuirkyStore(t)
	// By default (make test, CI) the sequences come from a fixed seed, so a run checks the same
	// 200 sequences every time and a new failure means a change broke something.
	// MOUNT_S3_MODEL=1 draws new sequences each run, to look for bugs not found yet.
	if os.Getenv("MOUNT_S3_MODEL") != "1" {
		setRapidFlag(t, "rapid.seed", "20261127")
	}
	// fusectl tells when the kernel's releases are done; mount it if root can.
	if _, err := os.Stat("/sys/fs/fuse/connections"); err == nil {
		syscall.Mount("none", "/sys/fs/fuse/connections", "fusectl", 0, "")
	}
	// A mount built with the race detector sleeps 1 s at exit to catch late races; each
	// sequence unmounts, so that would be most of the test's time.
	noRaceExitSleep(t)
	// One mount first, with the outer test: it builds the binary and skips (or fails, with
	// MOUNT_S3_REQUIRE_FUSE=1) where mounting is impossible.
	probe := harness.New(t, harness.Options{})
	if fuseWaiting(probe.Dir) == nil {
		t.Fatal("fusectl (/sys/fs/fuse/connections) is not mounted; the model test needs it to know when the kernel's releases are done")
	}
	checks := modelChecks(t, 200)
	// A sequence takes about half a second: give shrinking time to find a short one.
	setRapidFlag(t, "rapid.shrinktime", "2m")
	avoid := avoidedBugs(t)
	t.Logf("%d sequences; avoiding known mount bugs: %v", checks, slices.Sorted(maps.Keys(avoid)))
	defer func() { t.Logf("%d system calls on the mounts failed with EINTR and were retried", eintrs.Load()) }()
	rapid.Check(t, func(rt *rapid.T) { newMachine(t, rt, avoid).run() })
}

// modelMountArgs are the flags of every model-test mount.
var modelMountArgs = []string{"--allow-overwrite", "--allow-delete", "--metadata-ttl", "0", "--negative-metadata-ttl", "0"}

// maxOpen is how many write handles a sequence keeps open at once.
const maxOpen = 2

// machine is one sequence: a model and a mount that must agree.
type machine struct {
	rt      *rapid.T
	tb      testing.TB
	m       *harness.Mount
	mod     *model.Model
	fds     map[model.Handle]int // the mount's descriptor of each open model handle
	waiting func() (int, error)
	history []string // the steps so far, for the report of a failure

	avoid     map[string]bool
	localDirs map[string]int // canonical path -> an open descriptor or -1 (knownBugs only)
	aborted   map[model.Handle]bool
}

// dumped is set once a failing sequence has been shown in full.
var dumped atomic.Bool

func newMachine(t *testing.T, rt *rapid.T, avoid map[string]bool) *machine {
	prefix := rapid.SampledFrom([]string{"", "a/"}).Draw(rt, "prefix")
	s := &machine{
		rt:        rt,
		mod:       model.New(model.Options{Prefix: prefix, AllowOverwrite: true, AllowDelete: true}),
		fds:       map[model.Handle]int{},
		avoid:     avoid,
		localDirs: map[string]int{},
		aborted:   map[model.Handle]bool{},
	}
	// Registered before the mount, so it runs after the unmount, which reports a mount
	// that crashed.
	rt.Cleanup(func() {
		if rt.Failed() && !dumped.Swap(true) {
			log := "(not mounted)"
			if s.m != nil {
				log = s.m.Logs()
			}
			t.Logf("first failing sequence, before shrinking:\n  %s\nmount-s3 log:\n%s", strings.Join(s.history, "\n  "), log)
		}
	})
	tb := &iterTB{TB: t, rt: rt}
	s.tb = tb
	s.m = harness.New(tb, harness.Options{Prefix: prefix, Args: modelMountArgs})
	if s.waiting = fuseWaiting(s.m.Dir); s.waiting == nil {
		s.fatalf("no fusectl entry for the mount at %s", s.m.Dir)
	}
	// Registered after the mount, so it runs before the unmount: open files keep a mount busy.
	rt.Cleanup(func() {
		for _, fd := range s.fds {
			syscall.Close(fd)
		}
		for _, fd := range s.localDirs {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
	})
	return s
}

func (s *machine) run() {
	s.rt.Repeat(map[string]func(*rapid.T){
		"":                 s.check,
		"stat":             s.stat,
		"readdir":          s.readdir,
		"read":             s.read,
		"create":           s.create,
		"openTrunc":        s.openTrunc,
		"openWrite":        s.openWrite,
		"write":            s.write,
		"fsync":            s.fsync,
		"close":            s.close,
		"createWriteClose": s.createWriteClose,
		"truncWriteClose":  s.truncWriteClose,
		"unlink":           s.unlink,
		"mkdir":            s.mkdir,
		"rmdir":            s.rmdir,
		"rename":           s.rename,
		"remotePut":        s.remotePut,
		"remoteDelete":     s.remoteDelete,
	})
}

// Generators.

var (
	modelNames = []string{"a", "b", "-a", "a-", "."}
	keyComps   = []string{"a", "b", "-a", "a-", ".", "..", ""}
	dataBytes  = []byte("xyz0\x00\xff\n")
)

// pathGen makes a path for a local operation: one or two names, the second possibly "..",
// never climbing out of the mount ("./.." would).
var pathGen = rapid.Custom(func(t *rapid.T) string {
	first := rapid.SampledFrom(modelNames).Draw(t, "first")
	if !rapid.Bool().Draw(t, "two") {
		return first
	}
	second := rapid.SampledFrom(append(slices.Clone(modelNames), "..")).Draw(t, "second")
	if first == "." && second == ".." {
		second = "."
	}
	return first + "/" + second
})

// dataGen makes contents of min to 20 bytes.
func dataGen(min int) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		return string(rapid.SliceOfN(rapid.SampledFrom(dataBytes), min, 20).Draw(t, "bytes"))
	})
}

// keyGen makes a key another client writes: names joined by '/', with empty components
// ("a//b"), "." and ".." (hidden, K3), a trailing '/' (a marker, K2), and often the mount
// prefix in front so that most keys are inside it (K8).
func (s *machine) keyGen() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		comps := rapid.SliceOfN(rapid.SampledFrom(keyComps), 1, 3).Draw(t, "comps")
		key := strings.Join(comps, "/")
		if key == "" || rapid.IntRange(0, 3).Draw(t, "marker") == 0 {
			key += "/"
		}
		if p := s.mod.Prefix(); p != "" && rapid.Bool().Draw(t, "inPrefix") {
			key = p + key
		}
		return key
	})
}

func (s *machine) path(label string) string { return pathGen.Draw(s.rt, label) }

// Reporting and comparing.

// logf logs a step, for rapid's report of the shrunk sequence and for the history.
func (s *machine) logf(format string, args ...any) {
	s.rt.Helper()
	s.rt.Logf(format, args...)
	s.history = append(s.history, fmt.Sprintf(format, args...))
}

// fatalf fails the sequence, and records why in the history.
func (s *machine) fatalf(format string, args ...any) {
	s.rt.Helper()
	s.history = append(s.history, "FAILED: "+fmt.Sprintf(format, args...))
	s.rt.Fatalf(format, args...)
}

func (s *machine) errno(what string, got error, want syscall.Errno) {
	s.rt.Helper()
	if e := errnoOf(got); e != want {
		s.fatalf("%s: mount gives errno %d (%v), model %d (%v)", what, e, e, want, want)
	}
}

// settle waits until the kernel has no request outstanding at the mount: a release the
// kernel sent after close(2) returned has been handled (S5 commits there).
func (s *machine) settle() {
	s.rt.Helper()
	var n int
	var err error
	if !poll(5*time.Second, func() bool { n, err = s.waiting(); return err == nil && n == 0 }) {
		s.fatalf("the mount still has %d kernel requests outstanding after 5 s (%v)", n, err)
	}
}

// Observations.

func (s *machine) stat(rt *rapid.T) {
	p := s.path("path")
	want, werr := s.mod.Stat(p)
	var st syscall.Stat_t
	err := noEINTR(func() error { return syscall.Lstat(s.m.Path(p), &st) })
	s.logf("stat %q: model %s %v", p, show(want), werr)
	s.errno("stat "+p, err, werr)
	if werr != 0 {
		return
	}
	got := model.Node{Kind: kindOf(st.Mode)}
	if got.Kind == keymap.File {
		got.Size = st.Size
	}
	if got != want {
		s.fatalf("stat %q: mount %s, model %s", p, show(got), show(want))
	}
}

func (s *machine) readdir(rt *rapid.T) {
	p := s.path("path")
	want, werr := s.mod.ReadDir(p)
	got, err := readDirPath(s.m.Path(p))
	s.logf("readdir %q: model %v %v", p, want, werr)
	s.errno("readdir "+p, err, werr)
	if werr != 0 {
		return
	}
	wantEnts := []dirent{{".", keymap.Dir}, {"..", keymap.Dir}}
	for _, e := range want {
		wantEnts = append(wantEnts, dirent{e.Name, e.Kind})
	}
	if !slices.Equal(got, wantEnts) {
		s.fatalf("readdir %q:\nmount %v\nmodel %v", p, got, wantEnts)
	}
}

func (s *machine) read(rt *rapid.T) {
	p := s.path("path")
	want, werr := s.mod.Read(p)
	got, err := readAll(s.m.Path(p))
	s.logf("read %q: model %q %v", p, want, werr)
	s.errno("read "+p, err, werr)
	if werr == 0 && !bytes.Equal(got, want) {
		s.fatalf("read %q: mount %q, model %q", p, got, want)
	}
}

// Writes through the mount.

// open runs one open on both sides; when both succeed it returns the handle.
func (s *machine) open(op, p string, flags int, open func(string) (model.Handle, syscall.Errno)) (model.Handle, bool) {
	h, werr := open(p)
	fd, err := openNoEINTR(s.m.Path(p), flags, 0o644)
	if err == nil && werr != 0 {
		syscall.Close(fd)
	}
	s.logf("%s %q: model handle %d %v", op, p, h, werr)
	s.errno(op+" "+p, err, werr)
	if werr != 0 {
		return 0, false
	}
	s.fds[h] = fd
	return h, true
}

func (s *machine) create(rt *rapid.T) {
	if len(s.fds) >= maxOpen {
		rt.Skip("enough open handles")
	}
	s.open("create", s.path("path"), syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, s.mod.Create)
}

func (s *machine) openTrunc(rt *rapid.T) {
	if len(s.fds) >= maxOpen {
		rt.Skip("enough open handles")
	}
	s.open("open O_TRUNC", s.path("path"), syscall.O_WRONLY|syscall.O_TRUNC, s.mod.OpenTrunc)
}

// openWrite opens an existing file for writing without O_TRUNC, which always fails (S6).
func (s *machine) openWrite(rt *rapid.T) {
	p := s.path("path")
	werr := s.mod.OpenWrite(p)
	fd, err := openNoEINTR(s.m.Path(p), syscall.O_WRONLY, 0)
	if err == nil {
		syscall.Close(fd)
	}
	s.logf("open O_WRONLY %q: model %v", p, werr)
	s.errno("open O_WRONLY "+p, err, werr)
}

func (s *machine) handle(rt *rapid.T) model.Handle {
	hs := s.mod.Handles()
	if len(hs) == 0 {
		rt.Skip("no open handle")
	}
	return rapid.SampledFrom(hs).Draw(rt, "handle")
}

// doWrite writes data at off on both sides.
func (s *machine) doWrite(h model.Handle, off int64, data string) {
	path, _ := s.mod.HandlePath(h)
	werr := s.mod.Write(h, off, []byte(data))
	if werr == syscall.EINVAL {
		s.aborted[h] = true
	}
	_, err := syscall.Pwrite(s.fds[h], []byte(data), off)
	s.logf("write handle %d (%q) at %d %q: model %v", h, path, off, data, werr)
	s.errno(fmt.Sprintf("write %q at %d", path, off), err, werr)
}

func (s *machine) write(rt *rapid.T) {
	h := s.handle(rt)
	_, size := s.mod.HandlePath(h)
	off := size
	if rapid.IntRange(0, 4).Draw(rt, "nonSequential") == 0 {
		// S4: anywhere but the end of what was written.
		off = rapid.Int64Range(0, size+4).Filter(func(o int64) bool { return o != size }).Draw(rt, "off")
	}
	s.doWrite(h, off, dataGen(1).Draw(rt, "data"))
}

func (s *machine) fsync(rt *rapid.T) {
	h := s.handle(rt)
	s.skipKnown(rt, "abort-fsync", s.aborted[h])
	path, _ := s.mod.HandlePath(h)
	werr := s.mod.Fsync(h)
	err := syscall.Fsync(s.fds[h])
	s.logf("fsync handle %d (%q): model %v", h, path, werr)
	s.errno("fsync "+path, err, werr)
}

func (s *machine) doClose(h model.Handle) {
	path, _ := s.mod.HandlePath(h)
	werr := s.mod.Close(h)
	err := syscall.Close(s.fds[h])
	delete(s.fds, h)
	s.logf("close handle %d (%q): model %v", h, path, werr)
	s.errno("close "+path, err, werr)
}

func (s *machine) close(rt *rapid.T) { s.doClose(s.handle(rt)) }

// createWriteClose is what most programs do: create, write everything, close.
func (s *machine) createWriteClose(rt *rapid.T) {
	p := s.path("path")
	data := dataGen(0).Draw(rt, "data")
	if h, ok := s.open("create", p, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, s.mod.Create); ok {
		if data != "" {
			s.doWrite(h, 0, data)
		}
		s.doClose(h)
	}
}

// truncWriteClose replaces a file whole (S6).
func (s *machine) truncWriteClose(rt *rapid.T) {
	p := s.path("path")
	data := dataGen(0).Draw(rt, "data")
	if h, ok := s.open("open O_TRUNC", p, syscall.O_WRONLY|syscall.O_TRUNC, s.mod.OpenTrunc); ok {
		if data != "" {
			s.doWrite(h, 0, data)
		}
		s.doClose(h)
	}
}

// Namespace operations.

func (s *machine) unlink(rt *rapid.T) {
	p := s.path("path")
	s.skipRemoval(rt, p)
	werr := s.mod.Unlink(p)
	err := noEINTR(func() error { return syscall.Unlink(s.m.Path(p)) })
	s.logf("unlink %q: model %v", p, werr)
	s.errno("unlink "+p, err, werr)
}

func (s *machine) mkdir(rt *rapid.T) {
	p := s.path("path")
	werr := s.mod.Mkdir(p)
	err := noEINTR(func() error { return syscall.Mkdir(s.m.Path(p), 0o755) })
	s.logf("mkdir %q: model %v", p, werr)
	s.errno("mkdir "+p, err, werr)
	if werr == 0 {
		s.madeLocalDir(p)
	}
}

func (s *machine) rmdir(rt *rapid.T) {
	p := s.path("path")
	canon, _ := s.mod.Resolve(p)
	werr := s.mod.Rmdir(p)
	s.skipKnown(rt, "rmdir-hidden", werr == syscall.ENOTEMPTY && s.hiddenBelow(canon))
	if werr == 0 {
		s.removingLocalDir(canon)
	}
	err := noEINTR(func() error { return syscall.Rmdir(s.m.Path(p)) })
	s.logf("rmdir %q: model %v", p, werr)
	s.errno("rmdir "+p, err, werr)
}

func (s *machine) rename(rt *rapid.T) {
	from, to := s.path("from"), s.path("to")
	werr := s.mod.Rename(from, to)
	err := noEINTR(func() error { return syscall.Rename(s.m.Path(from), s.m.Path(to)) })
	s.logf("rename %q %q: model %v", from, to, werr)
	s.errno(fmt.Sprintf("rename %q %q", from, to), err, werr)
}

// Another client.

func (s *machine) remotePut(rt *rapid.T) {
	key := s.keyGen().Draw(rt, "key")
	s.skipPut(rt, key)
	data := dataGen(0).Draw(rt, "data")
	s.logf("remote put %q %q", key, data)
	s.mod.RemotePut(key, []byte(data))
	s.m.Put(s.tb, key, []byte(data))
}

func (s *machine) remoteDelete(rt *rapid.T) {
	keys := slices.Sorted(maps.Keys(s.mod.Keys()))
	var key string
	if len(keys) > 0 && rapid.IntRange(0, 4).Draw(rt, "existing") > 0 {
		key = rapid.SampledFrom(keys).Draw(rt, "key")
	} else {
		key = s.keyGen().Draw(rt, "key")
	}
	p, _, err := keymap.PathOfKey(s.mod.Prefix(), key)
	if err != nil {
		p = "" // a hidden key, or one outside the prefix
	}
	s.skipRemoval(rt, p)
	s.logf("remote delete %q", key)
	s.mod.RemoteDelete(key)
	s.m.Delete(s.tb, key)
}

// check compares the whole tree the mount shows with the model's, after every step.
func (s *machine) check(rt *rapid.T) {
	s.settle()
	want := s.mod.Tree()
	got, problems, err := mountTree(s.m.Dir)
	if err != nil {
		s.fatalf("walking the mount: %v", err)
	}
	paths := slices.Collect(maps.Keys(want))
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		w, inModel := want[p]
		g, inMount := got[p]
		switch {
		case !inMount:
			problems = append(problems, fmt.Sprintf("%q: model %s, mount does not show it", p, show(w)))
		case !inModel:
			problems = append(problems, fmt.Sprintf("%q: mount %s, model does not have it", p, show(g)))
		case g != w:
			problems = append(problems, fmt.Sprintf("%q: mount %s, model %s", p, show(g), show(w)))
		}
	}
	if len(problems) > 0 {
		s.fatalf("the mount's tree differs from the model's:\n  %s\nbucket: %q", strings.Join(problems, "\n  "), s.mod.Keys())
	}
}

func show(n model.Node) string {
	if n.Kind == keymap.File {
		return fmt.Sprintf("file of %d bytes", n.Size)
	}
	return n.Kind.String()
}
