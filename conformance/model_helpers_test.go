package conformance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/model"
)

// iterTB lets the harness, which takes a testing.TB, mount once per rapid check: cleanups run
// at the end of the check (so each check unmounts its own mount), and failures go to the
// rapid.T, which shrinks and reports them. Everything else is the outer test's.
type iterTB struct {
	testing.TB
	rt *rapid.T
}

func (b *iterTB) Cleanup(f func())                  { b.rt.Cleanup(f) }
func (b *iterTB) Error(args ...any)                 { b.rt.Error(args...) }
func (b *iterTB) Errorf(format string, args ...any) { b.rt.Errorf(format, args...) }
func (b *iterTB) Fail()                             { b.rt.Fail() }
func (b *iterTB) FailNow()                          { b.rt.FailNow() }
func (b *iterTB) Failed() bool                      { return b.rt.Failed() }
func (b *iterTB) Fatal(args ...any)                 { b.rt.Fatal(args...) }
func (b *iterTB) Fatalf(format string, args ...any) { b.rt.Fatalf(format, args...) }
func (b *iterTB) Log(args ...any)                   { b.rt.Log(args...) }
func (b *iterTB) Logf(format string, args ...any)   { b.rt.Logf(format, args...) }
func (b *iterTB) Skip(args ...any)                  { b.rt.Skip(args...) }
func (b *iterTB) Skipf(format string, args ...any)  { b.rt.Skipf(format, args...) }
func (b *iterTB) SkipNow()                          { b.rt.SkipNow() }

// TempDir is removed when the check ends (after the unmount, which was registered later).
func (b *iterTB) TempDir() string {
	dir, err := os.MkdirTemp("", "mount-s3-model-")
	if err != nil {
		b.rt.Fatalf("temp dir: %v", err)
	}
	b.rt.Cleanup(func() { os.Remove(dir) })
	return dir
}

// setRapidFlag sets one of rapid's flags for the test, unless it was given on the command
// line, and restores it when the test ends. It returns the value in force.
func setRapidFlag(t *testing.T, name, value string) string {
	f := flag.Lookup(name)
	if f == nil {
		t.Fatalf("flag %s not registered", name)
	}
	// Given on the command line? flag.Visit cannot tell: a flag an earlier test set (and
	// restored) counts as set for the rest of the run, which made every later test run the
	// first one's number of checks.
	explicit := false
	for _, a := range os.Args[1:] {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			explicit = true
		}
	}
	if explicit {
		return f.Value.String()
	}
	old := f.Value.String()
	if err := flag.Set(name, value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flag.Set(name, old) })
	return value
}

// modelChecks returns how many sequences TestModel runs: -rapid.checks if given on the
// command line (`make conformance RAPID_CHECKS=n` passes it), else $MOUNT_S3_MODEL_CHECKS,
// else $RAPID_CHECKS, else def.
func modelChecks(t *testing.T, def int) int {
	checks := def
	for _, env := range []string{"MOUNT_S3_MODEL_CHECKS", "RAPID_CHECKS"} {
		if v := os.Getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q: want a positive number", env, v)
			}
			checks = n
			break
		}
	}
	n, _ := strconv.Atoi(setRapidFlag(t, "rapid.checks", strconv.Itoa(checks)))
	return n
}

// noRaceExitSleep sets atexit_sleep_ms=0 in GORACE for the mounts the test starts (the
// harness passes its environment on), until the test ends: a program built with the race
// detector otherwise sleeps 1 s before it exits.
func noRaceExitSleep(t *testing.T) {
	old, had := os.LookupEnv("GORACE")
	os.Setenv("GORACE", strings.TrimSpace(old+" atexit_sleep_ms=0"))
	t.Cleanup(func() {
		if had {
			os.Setenv("GORACE", old)
		} else {
			os.Unsetenv("GORACE")
		}
	})
}

// fuseWaiting returns a function that reports how many requests the kernel has sent to the
// mount at dir and not yet had answered, from fusectl: releases, which the kernel sends after
// close(2) has returned, are counted until the mount has handled them. Nil if fusectl is not
// mounted.
func fuseWaiting(dir string) func() (int, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return nil
	}
	minor := (st.Dev & 0xff) | ((st.Dev >> 12) & 0xfff00)
	file := fmt.Sprintf("/sys/fs/fuse/connections/%d/waiting", minor)
	if _, err := os.Stat(file); err != nil {
		return nil
	}
	return func() (int, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(string(b)))
	}
}

// poll calls cond until it is true or the timeout passes, and reports whether it became true.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// eintrs counts the system calls on the mount that failed with EINTR and were retried.
var eintrs atomic.Int64

// noEINTR runs a system call again while it fails with EINTR, as most of Go's os package
// does: the mount answers EINTR when the kernel interrupts a request because the calling
// thread got a signal, and Go's runtime signals its threads (SIGURG) all the time. Only calls
// that have done nothing when they fail so are retried: not write, fsync or close.
func noEINTR(call func() error) error {
	for {
		err := call()
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
		eintrs.Add(1)
	}
}

func openNoEINTR(path string, flags int, mode uint32) (fd int, err error) {
	err = noEINTR(func() (err error) { fd, err = syscall.Open(path, flags, mode); return err })
	return fd, err
}

// dirent is one entry of a raw getdents64 listing.
type dirent struct {
	name string
	kind keymap.Kind // from d_type: File, Dir, or 0 for anything else
}

// readDirFd lists an open directory with raw getdents64 calls, in the order the file system
// returns the entries, "." and ".." included, with their d_type.
func readDirFd(fd int) ([]dirent, error) {
	var out []dirent
	buf := make([]byte, 8192)
	for {
		var n int
		err := noEINTR(func() (err error) { n, err = syscall.ReadDirent(fd, buf); return err })
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		for b := buf[:n]; len(b) > 0; {
			reclen := binary.LittleEndian.Uint16(b[16:18])
			typ := b[18]
			name := b[19:reclen]
			d := dirent{name: string(name[:bytes.IndexByte(name, 0)])}
			switch typ {
			case syscall.DT_DIR:
				d.kind = keymap.Dir
			case syscall.DT_REG:
				d.kind = keymap.File
			}
			out = append(out, d)
			b = b[reclen:]
		}
	}
}

// readDirPath opens path as a directory and lists it with readDirFd.
func readDirPath(path string) ([]dirent, error) {
	fd, err := openNoEINTR(path, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	return readDirFd(fd)
}

// kindOf is the keymap kind of a stat mode: File, Dir, or 0 for anything else.
func kindOf(mode uint32) keymap.Kind {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return keymap.Dir
	case syscall.S_IFREG:
		return keymap.File
	}
	return 0
}

// readAll opens path for reading and reads it to the end, as a program would.
func readAll(path string) ([]byte, error) {
	fd, err := openNoEINTR(path, syscall.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var out []byte
	buf := make([]byte, 4096)
	for {
		var n int
		err := noEINTR(func() (err error) { n, err = syscall.Read(fd, buf); return err })
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// mountTree walks the whole mount the way a program does, with raw getdents64 on each
// directory and lstat of each entry relative to its directory (os.Root: one lookup per
// entry), and returns every path with what lstat says (kind and file size). The entries of a
// directory are looked at concurrently, as several programs would, which makes the walk
// faster. Each disagreement of the walk itself is returned as a problem:
// "." and ".." not first, a name listed twice or out of byte order (K6), a d_type that is not
// the kind lstat gives (K4), a listed name that lstat cannot find, a directory that cannot be
// listed.
func mountTree(root string) (map[string]model.Node, []string, error) {
	var r *os.Root
	if err := noEINTR(func() (err error) { r, err = os.OpenRoot(root); return err }); err != nil {
		return nil, nil, err
	}
	var (
		mu       sync.Mutex
		tree     = map[string]model.Node{"": {Kind: keymap.Dir}}
		problems []string
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	var walk func(r *os.Root, dir string)
	walk = func(r *os.Root, dir string) {
		var wg sync.WaitGroup
		defer r.Close()
		defer wg.Wait()
		var f *os.File
		err := noEINTR(func() (err error) { f, err = r.Open("."); return err })
		if err != nil {
			problem("open dir %q: %v", dir, errnoOf(err))
			return
		}
		ents, err := readDirFd(int(f.Fd()))
		f.Close()
		if err != nil {
			problem("getdents %q: %v", dir, errnoOf(err))
			return
		}
		if len(ents) < 2 || ents[0].name != "." || ents[1].name != ".." {
			problem("readdir %q: does not start with . and ..: %v", dir, ents)
		} else {
			ents = ents[2:]
		}
		for i, e := range ents {
			path := keymap.Join(dir, e.name)
			if i > 0 && ents[i-1].name >= e.name {
				problem("readdir %q: %q listed after %q (K6)", dir, e.name, ents[i-1].name)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var fi os.FileInfo
				err := noEINTR(func() (err error) { fi, err = r.Lstat(e.name); return err })
				if err != nil {
					problem("lstat %q listed in %q: %v", path, dir, errnoOf(err))
					return
				}
				st := fi.Sys().(*syscall.Stat_t)
				n := model.Node{Kind: kindOf(st.Mode)}
				if n.Kind == keymap.File {
					n.Size = st.Size
				}
				if n.Kind != e.kind {
					problem("%q: readdir says %v, lstat says %v", path, e.kind, n.Kind)
				}
				mu.Lock()
				tree[path] = n
				mu.Unlock()
				if n.Kind == keymap.Dir {
					var sub *os.Root
					err := noEINTR(func() (err error) { sub, err = r.OpenRoot(e.name); return err })
					if err != nil {
						problem("open dir %q: %v", path, errnoOf(err))
						return
					}
					walk(sub, path)
				}
			}()
		}
	}
	walk(r, "")
	slices.Sort(problems)
	return tree, problems, nil
}

// knownBugs are the mount's disagreements with the rules that TestModel has found and that
// are not fixed yet, by id. $MOUNT_S3_MODEL_AVOID (ids separated by commas, or "all") stops
// TestModel from generating the sequences that show them, so that one can check that nothing
// else fails meanwhile; the model is not changed. Remove an entry when its bug is fixed.
var knownBugs = map[string]string{}

// avoidedBugs reads $MOUNT_S3_MODEL_AVOID.
func avoidedBugs(t *testing.T) map[string]bool {
	avoid := map[string]bool{}
	for _, id := range strings.Split(os.Getenv("MOUNT_S3_MODEL_AVOID"), ",") {
		switch id = strings.TrimSpace(id); {
		case id == "":
		case id == "all":
			for id := range knownBugs {
				avoid[id] = true
			}
		case knownBugs[id] == "":
			t.Fatalf("MOUNT_S3_MODEL_AVOID: unknown bug %q", id)
		default:
			avoid[id] = true
		}
	}
	return avoid
}

// skipKnown rejects the step when it would show a known bug being avoided.
func (s *machine) skipKnown(rt *rapid.T, bug string, shows bool) {
	if shows && s.avoid[bug] {
		rt.Skip("avoiding known bug " + bug)
	}
}

// madeLocalDir records a directory made by mkdir, and keeps it open when avoiding
// forget-local: the kernel does not forget an open directory.
func (s *machine) madeLocalDir(path string) {
	canon, errno := s.mod.Resolve(path)
	if errno != 0 {
		return
	}
	s.localDirs[canon] = -1
	if s.avoid["forget-local"] {
		if fd, err := openNoEINTR(s.m.Path(canon), syscall.O_RDONLY|syscall.O_DIRECTORY, 0); err == nil {
			s.localDirs[canon] = fd
		}
	}
}

// removingLocalDir closes what madeLocalDir opened before an rmdir that removes it: the
// kernel keeps a removed directory that is open as a dead inode.
func (s *machine) removingLocalDir(canon string) {
	if fd, ok := s.localDirs[canon]; ok {
		if fd >= 0 {
			syscall.Close(fd)
		}
		delete(s.localDirs, canon)
	}
}

// hiddenBelow reports whether the bucket has a hidden key right below directory dir.
func (s *machine) hiddenBelow(dir string) bool {
	dirKey := keymap.DirKey(s.mod.Prefix(), dir)
	for k := range s.mod.Keys() {
		if rel, ok := strings.CutPrefix(k, dirKey); ok && !keymap.ValidName(strings.SplitN(rel, "/", 2)[0]) {
			return true
		}
	}
	return false
}

// skipRemoval rejects an unlink or a remote delete of path that could show lost-parent or
// committed-local-dir.
func (s *machine) skipRemoval(rt *rapid.T, path string) {
	if canon, errno := s.mod.Resolve(path); errno == 0 {
		path = canon
	}
	parent, _ := keymap.Split(path)
	_, inLocal := s.localDirs[parent]
	s.skipKnown(rt, "committed-local-dir", parent != "" && inLocal)
	local := slices.Collect(maps.Keys(s.localDirs))
	for _, h := range s.mod.Handles() {
		p, _ := s.mod.HandlePath(h)
		local = append(local, p)
	}
	for _, p := range local {
		d, _ := keymap.Split(p)
		_, dLocal := s.localDirs[d]
		s.skipKnown(rt, "lost-parent", d != "" && !dLocal)
	}
}

// skipPut rejects a remote put of key that could show local-dir-file or writer-shadowed.
func (s *machine) skipPut(rt *rapid.T, key string) {
	if p, dir, err := keymap.PathOfKey(s.mod.Prefix(), key); err == nil && !dir {
		_, local := s.localDirs[p]
		s.skipKnown(rt, "local-dir-file", local)
	}
	for _, h := range s.mod.Handles() {
		p, _ := s.mod.HandlePath(h)
		s.skipKnown(rt, "writer-shadowed", strings.HasPrefix(key, s.mod.Prefix()+p+"/"))
	}
}
