package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/spec/posixmeta"
)

// TestSyncModel is the model-vs-mount property test of sync mode. Its model is a local
// directory: sync mode promises the semantics of a local file system (issue 6), so every
// random sequence of operations runs on a fresh sync mount and on a temporary directory of
// the machine's own disk, and each step's errno must be the same on both. After the sequence
// the two trees (names, kinds, modes, sizes, bytes, link targets, extended attributes, link
// counts and which names are one file) must be equal, and after a
// write-back (`mount-s3 sync --flush`) the bucket must hold exactly the mount's objects.
//
// Number of sequences: 50 from a fixed seed, or $MOUNT_S3_MODEL_CHECKS / -rapid.checks;
// MOUNT_S3_MODEL=1 draws new ones.
func TestSyncModel(t *testing.T) {
	if os.Getenv("MOUNT_S3_MODEL") != "1" {
		setRapidFlag(t, "rapid.seed", "20261127")
	}
	noRaceExitSleep(t)
	srv, store := harness.NewServer(t)
	probe := syncMount(t, srv, store, t.TempDir()) // builds the binary; fails or skips if FUSE cannot mount
	probe.Unmount(t)
	modelChecks(t, 50)
	setRapidFlag(t, "rapid.shrinktime", "1m")
	seq := 0
	rapid.Check(t, func(rt *rapid.T) {
		seq++
		tb := &iterTB{TB: t, rt: rt}
		scratch := func() string {
			d, err := os.MkdirTemp("", "mount-s3-syncmodel-")
			if err != nil {
				rt.Fatal(err)
			}
			rt.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
		ref, syncDir := scratch(), scratch()
		// Each sequence has its own directory in the one bucket, so the bucket check sees only
		// this sequence's objects.
		top := fmt.Sprintf("s%03d", seq)
		m := harness.MountServer(tb, srv, store, harness.Options{Args: []string{"--sync-dir", syncDir, "--write-back-delay", "1h"}})
		mnt := m.Path(top)
		must(rt, os.Mkdir(mnt, 0o755))
		must(rt, os.Mkdir(filepath.Join(ref, top), 0o755))
		refTop := filepath.Join(ref, top)
		sides := []string{refTop, mnt}

		names := []string{"a", "b", "d", "d/a", "d/b", "e", "e/d", "e/d/a"}
		path := rapid.SampledFrom(names)
		data := rapid.SliceOfN(rapid.Byte(), 0, 300)
		steps := rapid.IntRange(1, 25).Draw(rt, "steps")
		// kept is a descriptor per side that stays open across steps, so that writes and reads
		// through it meet renames, unlinks and truncates by path.
		var kept [2]*os.File
		rt.Cleanup(func() {
			for _, f := range kept {
				if f != nil {
					f.Close()
				}
			}
		})
		for i := 0; i < steps; i++ {
			op := rapid.IntRange(0, 18).Draw(rt, "op")
			var desc string
			var do func(root string) error
			var doFd func(side int) (string, error)
			switch op {
			case 0, 1: // write at an offset, creating the file if needed
				p, off, b := path.Draw(rt, "path"), rapid.IntRange(0, 400).Draw(rt, "off"), data.Draw(rt, "data")
				desc = fmt.Sprintf("pwrite %s @%d %d bytes", p, off, len(b))
				do = func(root string) error {
					f, err := os.OpenFile(filepath.Join(root, p), os.O_RDWR|os.O_CREATE|syscall.O_NONBLOCK, 0o644)
					if err != nil {
						return err
					}
					_, err = f.WriteAt(b, int64(off))
					return errors.Join(err, f.Close())
				}
			case 2: // append
				p, b := path.Draw(rt, "path"), data.Draw(rt, "data")
				desc = fmt.Sprintf("append %s %d bytes", p, len(b))
				do = func(root string) error {
					// O_NONBLOCK: opening a FIFO for writing only would wait for a reader.
					f, err := os.OpenFile(filepath.Join(root, p), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o640)
					if err != nil {
						return err
					}
					_, err = f.Write(b)
					return errors.Join(err, f.Close())
				}
			case 3:
				p, n := path.Draw(rt, "path"), rapid.IntRange(0, 500).Draw(rt, "size")
				desc = fmt.Sprintf("truncate %s %d", p, n)
				do = func(root string) error { return os.Truncate(filepath.Join(root, p), int64(n)) }
			case 4:
				p := path.Draw(rt, "path")
				desc = "unlink " + p
				do = func(root string) error { return syscall.Unlink(filepath.Join(root, p)) }
			case 5:
				p := path.Draw(rt, "path")
				desc = "mkdir " + p
				do = func(root string) error { return syscall.Mkdir(filepath.Join(root, p), 0o750) }
			case 6:
				p := path.Draw(rt, "path")
				desc = "rmdir " + p
				do = func(root string) error { return syscall.Rmdir(filepath.Join(root, p)) }
			case 7, 8:
				a, b := path.Draw(rt, "from"), path.Draw(rt, "to")
				desc = fmt.Sprintf("rename %s %s", a, b)
				do = func(root string) error { return syscall.Rename(filepath.Join(root, a), filepath.Join(root, b)) }
			case 9:
				p, target := path.Draw(rt, "path"), path.Draw(rt, "target")
				desc = fmt.Sprintf("symlink %s -> %s", p, target)
				do = func(root string) error { return syscall.Symlink(target, filepath.Join(root, p)) }
			case 10:
				p, mode := path.Draw(rt, "path"), rapid.SampledFrom([]uint32{0o600, 0o644, 0o755, 0o700}).Draw(rt, "mode")
				desc = fmt.Sprintf("chmod %s %o", p, mode)
				do = func(root string) error { return syscall.Chmod(filepath.Join(root, p), mode) }
			case 11:
				p := path.Draw(rt, "path")
				desc = "open and keep " + p
				doFd = func(side int) (string, error) {
					if kept[side] != nil {
						kept[side].Close()
						kept[side] = nil
					}
					f, err := os.OpenFile(filepath.Join(sides[side], p), os.O_RDWR|os.O_CREATE, 0o644)
					if err == nil {
						kept[side] = f
					}
					return "", err
				}
			case 12:
				off, b := rapid.IntRange(0, 400).Draw(rt, "off"), data.Draw(rt, "data")
				desc = fmt.Sprintf("pwrite through the kept descriptor @%d %d bytes", off, len(b))
				doFd = func(side int) (string, error) {
					if kept[side] == nil {
						return "", syscall.EBADF
					}
					_, err := kept[side].WriteAt(b, int64(off))
					return "", err
				}
			case 13:
				desc = "read through the kept descriptor"
				doFd = func(side int) (string, error) {
					if kept[side] == nil {
						return "", syscall.EBADF
					}
					buf := make([]byte, 2048)
					n, err := kept[side].ReadAt(buf, 0)
					if errors.Is(err, io.EOF) {
						err = nil
					}
					return string(buf[:n]), err
				}
			case 15:
				p := path.Draw(rt, "path")
				desc = "mkfifo " + p
				do = func(root string) error { return syscall.Mkfifo(filepath.Join(root, p), 0o640) }
			case 16:
				p, name, b := path.Draw(rt, "path"), rapid.SampledFrom([]string{"user.a", "user.b"}).Draw(rt, "name"), data.Draw(rt, "value")
				flags := rapid.SampledFrom([]int{0, unix.XATTR_CREATE, unix.XATTR_REPLACE}).Draw(rt, "flags")
				desc = fmt.Sprintf("setxattr %s %s %d bytes flags %d", p, name, len(b), flags)
				do = func(root string) error { return unix.Lsetxattr(filepath.Join(root, p), name, b, flags) }
			case 17:
				p, name := path.Draw(rt, "path"), rapid.SampledFrom([]string{"user.a", "user.b"}).Draw(rt, "name")
				desc = fmt.Sprintf("removexattr %s %s", p, name)
				do = func(root string) error { return unix.Lremovexattr(filepath.Join(root, p), name) }
			case 18:
				a, b := path.Draw(rt, "from"), path.Draw(rt, "to")
				desc = fmt.Sprintf("link %s %s", a, b)
				do = func(root string) error { return syscall.Link(filepath.Join(root, a), filepath.Join(root, b)) }
			case 14:
				desc = "close the kept descriptor"
				doFd = func(side int) (string, error) {
					if kept[side] == nil {
						return "", nil
					}
					err := kept[side].Close()
					kept[side] = nil
					return "", err
				}
			}
			if doFd == nil {
				doFd = func(side int) (string, error) { return "", do(sides[side]) }
			}
			wantOut, wantErr := doFd(0)
			gotOut, gotErr := doFd(1)
			if want, got := errnoOf(wantErr), errnoOf(gotErr); want != got {
				rt.Fatalf("step %d: %s: local disk says %v, the sync mount says %v\n%s", i, desc, want, got, m.Logs())
			}
			if wantOut != gotOut {
				rt.Fatalf("step %d: %s: local disk reads %d bytes %q, the sync mount %d bytes %q\n%s", i, desc,
					len(wantOut), trunc(wantOut), len(gotOut), trunc(gotOut), m.Logs())
			}
		}
		for side, f := range kept {
			if f != nil {
				must(rt, f.Close())
				kept[side] = nil
			}
		}
		refTree, err := treeOf(refTop)
		must(rt, err)
		mntTree, err := treeOf(mnt)
		must(rt, err)
		if d := diffTrees(refTree, mntTree); d != "" {
			rt.Fatalf("after the sequence the trees differ (local disk vs sync mount):\n%s\n%s", d, m.Logs())
		}
		out, err := harness.Flush(t, m.Dir)
		if err != nil {
			rt.Fatalf("flush: %v: %s\n%s", err, out, m.Logs())
		}
		want := map[string]string{}
		for p, n := range mntTree {
			key := top + "/" + p
			switch {
			case n.kind == "dir":
				want[key+"/"] = ""
			default:
				want[key] = n.body
			}
		}
		want[top+"/"] = ""
		got := map[string]string{}
		for k, v := range bucketObjects(tb, store, top+"/") {
			got[k] = v
		}
		if d := diffMaps(want, got); d != "" {
			rt.Fatalf("after the write-back the bucket differs from the mount:\n%s\n%s", d, m.Logs())
		}
		// The objects' metadata says what the mount shows: the type, the permission bits and
		// the extended attributes (Y3).
		for p, n := range mntTree {
			if n.kind == "dir" {
				continue
			}
			info, err := store.Head(context.Background(), top+"/"+p)
			must(rt, err)
			a := posixmeta.Decode(info.Metadata)
			wantKind := map[string]posixmeta.Kind{"file": posixmeta.File, "symlink": posixmeta.Symlink, "fifo": posixmeta.FIFO}[n.kind]
			if a.Kind != wantKind || a.Mode&0o777 != uint32(n.mode.Perm()) {
				rt.Fatalf("%s: the object's metadata says kind %v mode %o, the mount shows %s %v (%v)\n%s", p, a.Kind, a.Mode, n.kind, n.mode, info.Metadata, m.Logs())
			}
			var xs []string
			for k, v := range a.Xattrs {
				if strings.HasPrefix(k, "user.") {
					xs = append(xs, k+"="+string(v))
				}
			}
			sort.Strings(xs)
			if strings.Join(xs, "\n") != n.xattrs {
				rt.Fatalf("%s: the object's extended attributes are %q, the mount shows %q\n%s", p, xs, n.xattrs, m.Logs())
			}
		}
	})
}

func must(rt *rapid.T, err error) {
	if err != nil {
		rt.Helper()
		rt.Fatal(err)
	}
}

type treeNode struct {
	kind   string // "file", "dir", "symlink", "fifo"
	mode   fs.FileMode
	body   string // file bytes or link target
	xattrs string // user extended attributes, name=value in order
	nlink  uint64
	links  string // the other names of the same inode, in order (hard links)
}

func treeOf(root string) (map[string]treeNode, error) {
	out := map[string]treeNode{}
	byIno := map[uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		n := treeNode{mode: fi.Mode()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n.nlink = uint64(st.Nlink)
			if !fi.IsDir() {
				byIno[st.Ino] = append(byIno[st.Ino], rel)
			}
		}
		switch {
		case fi.IsDir():
			n.kind = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			n.kind = "symlink"
			n.body, err = os.Readlink(p)
		case fi.Mode()&fs.ModeNamedPipe != 0:
			n.kind = "fifo" // not read: that would wait for a writer
		default:
			n.kind = "file"
			var b []byte
			b, err = os.ReadFile(p)
			n.body = string(b)
		}
		if err == nil {
			n.xattrs, err = xattrsOf(p)
		}
		out[rel] = n
		return err
	})
	for _, names := range byIno {
		sort.Strings(names)
		for _, p := range names {
			n := out[p]
			for _, o := range names {
				if o != p {
					n.links += o + " "
				}
			}
			out[p] = n
		}
	}
	return out, err
}

// xattrsOf lists p's user extended attributes as "name=value" lines in name order.
func xattrsOf(p string) (string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return "", err
	}
	var names []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if strings.HasPrefix(name, "user.") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []string
	for _, name := range names {
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return "", err
		}
		out = append(out, name+"="+string(v[:m]))
	}
	return strings.Join(out, "\n"), nil
}

func diffTrees(want, got map[string]treeNode) string {
	var lines []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			lines = append(lines, "missing on the mount: "+p)
		case w.kind != g.kind || w.mode != g.mode:
			lines = append(lines, fmt.Sprintf("%s: local %s %v, mount %s %v", p, w.kind, w.mode, g.kind, g.mode))
		case w.xattrs != g.xattrs:
			lines = append(lines, fmt.Sprintf("%s: local xattrs %q, mount %q", p, w.xattrs, g.xattrs))
		case w.nlink != g.nlink || w.links != g.links:
			lines = append(lines, fmt.Sprintf("%s: local %d links (other names %q), mount %d (%q)", p, w.nlink, w.links, g.nlink, g.links))
		case w.body != g.body:
			lines = append(lines, fmt.Sprintf("%s: local %d bytes %q, mount %d bytes %q", p, len(w.body), trunc(w.body), len(g.body), trunc(g.body)))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			lines = append(lines, "only on the mount: "+p)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func diffMaps(want, got map[string]string) string {
	var lines []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			lines = append(lines, "missing in the bucket: "+k)
		case !bytes.Equal([]byte(w), []byte(g)):
			lines = append(lines, fmt.Sprintf("%s: mount %d bytes, bucket %d bytes", k, len(w), len(g)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, "only in the bucket: "+k)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
