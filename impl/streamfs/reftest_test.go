package streamfs_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
	"github.com/mount-s3/mount-s3/impl/streamfs"
	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/mount"
	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/model"
)

// TestReference is the model-vs-core property test without a kernel: random operation
// sequences run on spec/model and on the streaming core called directly (as the adapter
// calls it, one Lookup per name from the root, with metadata that is always stale, as with
// --metadata-ttl 0), over a fresh embedded bucket each. Every errno and result must be the
// model's, and after each step the whole tree the core lists and stats must be the model's.
// It checks in milliseconds what conformance's TestModel checks through a real mount; the
// kernel's own part (resolving "." and "..", its early errnos, page cache) is left to that
// test.
//
// Sequences: 300, or -rapid.checks.
func TestReference(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	_, store := s3test.Embedded(t, s3test.Options{Server: embedded.Options{Buckets: []string{"ref"}}})
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == "100" { // rapid's default
		f.Value.Set("300")
		t.Cleanup(func() { f.Value.Set("100") })
	}
	rapid.Check(t, func(rt *rapid.T) {
		r := newRef(rt, store)
		rt.Repeat(map[string]func(*rapid.T){
			"":                 r.check,
			"stat":             r.stat,
			"readdir":          r.readdir,
			"read":             r.read,
			"create":           r.create,
			"openTrunc":        r.openTrunc,
			"openWrite":        r.openWrite,
			"write":            r.write,
			"fsync":            r.fsync,
			"close":            r.close,
			"createWriteClose": r.createWriteClose,
			"unlink":           r.unlink,
			"mkdir":            r.mkdir,
			"rmdir":            r.rmdir,
			"remotePut":        r.remotePut,
			"remoteDelete":     r.remoteDelete,
		})
	})
}

// ref is one sequence: a model and a core that must agree.
type ref struct {
	rt      *rapid.T
	ctx     context.Context
	fs      *streamfs.FS
	store   s3.Store
	clock   *clock.Fake
	prefix  string // the sequence's bucket: keys under prefix, of which the mount sees mnt
	mod     *model.Model
	handles map[model.Handle]vfs.HandleID
}

// opener is the process that opens every file, so that its close commits (S5).
const opener = 42

var seq int

func newRef(rt *rapid.T, store s3.Store) *ref {
	seq++
	// Each sequence has a bucket of its own: the keys under a fresh root prefix.
	root := fmt.Sprintf("seq%d/", seq)
	mnt := rapid.SampledFrom([]string{"", "a/"}).Draw(rt, "prefix")
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	f, err := streamfs.New(streamfs.Config{Store: store, Clock: clk, Prefix: root + mnt,
		MetadataTTL: time.Nanosecond, NegativeTTL: time.Nanosecond, AllowOverwrite: true, AllowDelete: true})
	if err != nil {
		rt.Fatal(err)
	}
	r := &ref{rt: rt, ctx: context.Background(), fs: f, store: store, clock: clk, prefix: root,
		mod:     model.New(model.Options{Prefix: mnt, AllowOverwrite: true, AllowDelete: true}),
		handles: map[model.Handle]vfs.HandleID{}}
	rt.Cleanup(func() {
		for _, h := range r.handles {
			f.Release(h)
		}
		if err := f.CheckInvariants(); err != nil {
			rt.Errorf("the inode and handle tables: %v", err)
		}
	})
	return r
}

var (
	refNames = []string{"a", "b", "-a", "a-"}
	refComps = []string{"a", "b", "-a", "a-", ".", "..", ""}
	refBytes = []byte("xyz0\x00\xff\n")
)

// path makes a canonical path of one or two names: the kernel resolves "." and ".." before
// the core sees a name.
func (r *ref) path(label string) string {
	first := rapid.SampledFrom(refNames).Draw(r.rt, label+"1")
	if !rapid.Bool().Draw(r.rt, label+"two") {
		return first
	}
	return first + "/" + rapid.SampledFrom(refNames).Draw(r.rt, label+"2")
}

func (r *ref) data(min int) []byte {
	return rapid.SliceOfN(rapid.SampledFrom(refBytes), min, 20).Draw(r.rt, "data")
}

// step moves the clock past every TTL: each operation asks the store, as with a TTL of 0.
func (r *ref) step() { r.clock.Advance(time.Millisecond) }

func (r *ref) agree(what string, err error, want syscall.Errno) {
	r.rt.Helper()
	got := syscall.Errno(0)
	if err != nil {
		got = mount.Errno(err)
	}
	if got != want {
		r.rt.Fatalf("%s: core gives %v (%v), model %v", what, got, err, want)
	}
}

// lookup resolves path as the kernel does, one Lookup per name from the root; a name below a
// file is ENOTDIR.
func (r *ref) lookup(path string) (vfs.Entry, error) {
	e := vfs.Entry{Attr: vfs.Attr{Inode: vfs.RootID, Mode: os.ModeDir}}
	if path == "" {
		return e, nil
	}
	for _, name := range strings.Split(path, "/") {
		if !e.Attr.Mode.IsDir() {
			return vfs.Entry{}, vfs.NewError("lookup", path, vfs.CodeNotDir, "not a directory")
		}
		var err error
		if e, err = r.fs.Lookup(r.ctx, e.Attr.Inode, name); err != nil {
			return vfs.Entry{}, err
		}
	}
	return e, nil
}

// parent resolves the directory of path and returns its inode and path's last name.
func (r *ref) parent(path string) (vfs.InodeID, string, error) {
	dir, name := keymap.Split(path)
	e, err := r.lookup(dir)
	if err == nil && !e.Attr.Mode.IsDir() {
		err = vfs.NewError("lookup", dir, vfs.CodeNotDir, "not a directory")
	}
	return e.Attr.Inode, name, err
}

func kindOf(a vfs.Attr) keymap.Kind {
	if a.Mode.IsDir() {
		return keymap.Dir
	}
	return keymap.File
}

func (r *ref) stat(rt *rapid.T) {
	r.step()
	p := r.path("path")
	want, werr := r.mod.Stat(p)
	e, err := r.lookup(p)
	if err == nil {
		e.Attr, _, err = r.fs.GetAttr(r.ctx, e.Attr.Inode)
	}
	rt.Logf("stat %q: model %v %v", p, want, werr)
	r.agree("stat "+p, err, werr)
	if werr == 0 {
		got := model.Node{Kind: kindOf(e.Attr)}
		if got.Kind == keymap.File {
			got.Size = int64(e.Attr.Size)
		}
		if got != want {
			rt.Fatalf("stat %q: core %v, model %v", p, got, want)
		}
	}
}

// list is the entries of directory path as a program's readdir sees them.
func (r *ref) list(path string) ([]keymap.Entry, error) {
	e, err := r.lookup(path)
	if err != nil {
		return nil, err
	}
	h, err := r.fs.OpenDir(r.ctx, e.Attr.Inode)
	if err != nil {
		return nil, err
	}
	defer r.fs.ReleaseDir(h)
	ents, err := r.fs.ReadDir(r.ctx, h, 0)
	if err != nil {
		return nil, err
	}
	var out []keymap.Entry
	for _, d := range ents[2:] {
		out = append(out, keymap.Entry{Name: d.Name, Kind: d.Kind})
	}
	return out, nil
}

func (r *ref) readdir(rt *rapid.T) {
	r.step()
	p := r.path("path")
	want, werr := r.mod.ReadDir(p)
	got, err := r.list(p)
	rt.Logf("readdir %q: model %v %v", p, want, werr)
	r.agree("readdir "+p, err, werr)
	if werr == 0 && !slices.Equal(got, want) {
		rt.Fatalf("readdir %q:\ncore  %v\nmodel %v", p, got, want)
	}
}

func (r *ref) readAll(p string) ([]byte, error) {
	e, err := r.lookup(p)
	if err != nil {
		return nil, err
	}
	h, err := r.fs.Open(r.ctx, e.Attr.Inode, vfs.OpenFlags{Read: true}, vfs.PID(opener))
	if err != nil {
		return nil, err
	}
	defer r.fs.Release(h)
	var out []byte
	buf := make([]byte, 7)
	for {
		n, err := r.fs.Read(r.ctx, h, int64(len(out)), buf)
		out = append(out, buf[:n]...)
		if err == io.EOF || err == nil && n == 0 {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (r *ref) read(rt *rapid.T) {
	r.step()
	p := r.path("path")
	want, werr := r.mod.Read(p)
	got, err := r.readAll(p)
	rt.Logf("read %q: model %q %v", p, want, werr)
	r.agree("read "+p, err, werr)
	if werr == 0 && !bytes.Equal(got, want) {
		rt.Fatalf("read %q: core %q, model %q", p, got, want)
	}
}

func (r *ref) doCreate(p string) (model.Handle, bool) {
	r.step()
	h, werr := r.mod.Create(p)
	var hid vfs.HandleID
	parent, name, err := r.parent(p)
	if err == nil {
		_, hid, err = r.fs.Create(r.ctx, parent, name, 0o644, vfs.Caller{Pid: opener})
	}
	r.rt.Logf("create %q: model handle %d %v", p, h, werr)
	r.agree("create "+p, err, werr)
	if werr != 0 {
		return 0, false
	}
	r.handles[h] = hid
	return h, true
}

func (r *ref) create(rt *rapid.T) {
	if len(r.handles) >= 2 {
		rt.Skip("enough open handles")
	}
	r.doCreate(r.path("path"))
}

func (r *ref) openTrunc(rt *rapid.T) {
	if len(r.handles) >= 2 {
		rt.Skip("enough open handles")
	}
	r.step()
	p := r.path("path")
	h, werr := r.mod.OpenTrunc(p)
	var hid vfs.HandleID
	e, err := r.lookup(p)
	if err == nil {
		hid, err = r.fs.Open(r.ctx, e.Attr.Inode, vfs.OpenFlags{Write: true, Trunc: true}, vfs.PID(opener))
	}
	rt.Logf("open O_TRUNC %q: model handle %d %v", p, h, werr)
	r.agree("open O_TRUNC "+p, err, werr)
	if werr == 0 {
		r.handles[h] = hid
	}
}

func (r *ref) openWrite(rt *rapid.T) {
	r.step()
	p := r.path("path")
	werr := r.mod.OpenWrite(p)
	e, err := r.lookup(p)
	if err == nil {
		var hid vfs.HandleID
		if hid, err = r.fs.Open(r.ctx, e.Attr.Inode, vfs.OpenFlags{Write: true}, vfs.PID(opener)); err == nil {
			r.fs.Release(hid)
		}
	}
	rt.Logf("open O_WRONLY %q: model %v", p, werr)
	r.agree("open O_WRONLY "+p, err, werr)
}

func (r *ref) handle(rt *rapid.T) model.Handle {
	hs := r.mod.Handles()
	if len(hs) == 0 {
		rt.Skip("no open handle")
	}
	return rapid.SampledFrom(hs).Draw(rt, "handle")
}

func (r *ref) doWrite(h model.Handle, off int64, data []byte) {
	r.step()
	p, _ := r.mod.HandlePath(h)
	werr := r.mod.Write(h, off, data)
	err := r.fs.Write(r.ctx, r.handles[h], off, data)
	r.rt.Logf("write %q at %d %q: model %v", p, off, data, werr)
	r.agree(fmt.Sprintf("write %q at %d", p, off), err, werr)
}

func (r *ref) write(rt *rapid.T) {
	h := r.handle(rt)
	_, size := r.mod.HandlePath(h)
	off := size
	if rapid.IntRange(0, 4).Draw(rt, "nonSequential") == 0 {
		off = rapid.Int64Range(0, size+4).Filter(func(o int64) bool { return o != size }).Draw(rt, "off")
	}
	r.doWrite(h, off, r.data(1))
}

func (r *ref) fsync(rt *rapid.T) {
	r.step()
	h := r.handle(rt)
	p, _ := r.mod.HandlePath(h)
	werr := r.mod.Fsync(h)
	err := r.fs.Fsync(r.ctx, r.handles[h])
	rt.Logf("fsync %q: model %v", p, werr)
	r.agree("fsync "+p, err, werr)
}

// doClose is close(2) by the opener, then the kernel's release of the last descriptor.
func (r *ref) doClose(h model.Handle) {
	r.step()
	p, _ := r.mod.HandlePath(h)
	werr := r.mod.Close(h)
	err := r.fs.Flush(r.ctx, r.handles[h], vfs.PID(opener))
	r.fs.Release(r.handles[h])
	delete(r.handles, h)
	r.rt.Logf("close %q: model %v", p, werr)
	r.agree("close "+p, err, werr)
}

func (r *ref) close(rt *rapid.T) { r.doClose(r.handle(rt)) }

func (r *ref) createWriteClose(rt *rapid.T) {
	data := r.data(0)
	if h, ok := r.doCreate(r.path("path")); ok {
		if len(data) > 0 {
			r.doWrite(h, 0, data)
		}
		r.doClose(h)
	}
}

// namespace runs a namespace operation on the parent and last name of path.
func (r *ref) namespace(op string, werr syscall.Errno, p string, do func(vfs.InodeID, string) error) {
	r.step()
	parent, name, err := r.parent(p)
	if err == nil {
		err = do(parent, name)
	}
	r.rt.Logf("%s %q: model %v", op, p, werr)
	r.agree(op+" "+p, err, werr)
}

func (r *ref) unlink(rt *rapid.T) {
	p := r.path("path")
	r.namespace("unlink", r.mod.Unlink(p), p, func(d vfs.InodeID, n string) error { return r.fs.Unlink(r.ctx, d, n) })
}

func (r *ref) mkdir(rt *rapid.T) {
	p := r.path("path")
	r.namespace("mkdir", r.mod.Mkdir(p), p, func(d vfs.InodeID, n string) error {
		_, err := r.fs.MkDir(r.ctx, d, n, 0o755, vfs.Caller{Pid: opener})
		return err
	})
}

func (r *ref) rmdir(rt *rapid.T) {
	p := r.path("path")
	r.namespace("rmdir", r.mod.Rmdir(p), p, func(d vfs.InodeID, n string) error { return r.fs.RmDir(r.ctx, d, n) })
}

// key makes a key another client writes: names joined by '/', with empty components, "."
// and ".." (hidden, K3), a trailing '/' (a marker, K2), and often the mount prefix in front.
func (r *ref) key() string {
	comps := rapid.SliceOfN(rapid.SampledFrom(refComps), 1, 3).Draw(r.rt, "comps")
	key := strings.Join(comps, "/")
	if key == "" || rapid.IntRange(0, 3).Draw(r.rt, "marker") == 0 {
		key += "/"
	}
	if p := r.mod.Prefix(); p != "" && rapid.Bool().Draw(r.rt, "inPrefix") {
		key = p + key
	}
	return key
}

func (r *ref) remotePut(rt *rapid.T) {
	key, data := r.key(), r.data(0)
	rt.Logf("remote put %q %q", key, data)
	r.mod.RemotePut(key, data)
	if _, err := r.store.Put(r.ctx, r.prefix+key, bytes.NewReader(data), int64(len(data)), s3.WriteOptions{}); err != nil {
		rt.Fatal(err)
	}
}

func (r *ref) remoteDelete(rt *rapid.T) {
	keys := slices.Sorted(maps.Keys(r.mod.Keys()))
	key := ""
	if len(keys) > 0 && rapid.IntRange(0, 4).Draw(rt, "existing") > 0 {
		key = rapid.SampledFrom(keys).Draw(rt, "key")
	} else {
		key = r.key()
	}
	rt.Logf("remote delete %q", key)
	r.mod.RemoteDelete(key)
	if err := r.store.Delete(r.ctx, r.prefix+key); err != nil {
		rt.Fatal(err)
	}
}

// check compares the whole tree the core shows (readdir of every directory, stat of every
// entry) with the model's.
func (r *ref) check(rt *rapid.T) {
	r.step()
	got := map[string]model.Node{"": {Kind: keymap.Dir}}
	var walk func(dir string)
	walk = func(dir string) {
		ents, err := r.list(dir)
		if err != nil {
			rt.Fatalf("readdir %q while walking the tree: %v", dir, err)
		}
		for _, e := range ents {
			p := keymap.Join(dir, e.Name)
			le, err := r.lookup(p)
			if err != nil {
				rt.Fatalf("lookup %q, listed in %q: %v", p, dir, err)
			}
			n := model.Node{Kind: kindOf(le.Attr)}
			if n.Kind != e.Kind {
				rt.Fatalf("%q is listed as a %v but looks up as a %v", p, e.Kind, n.Kind)
			}
			if n.Kind == keymap.File {
				n.Size = int64(le.Attr.Size)
			}
			got[p] = n
			if n.Kind == keymap.Dir {
				walk(p)
			}
		}
	}
	walk("")
	want := r.mod.Tree()
	if !maps.Equal(got, want) {
		rt.Fatalf("the core's tree differs from the model's:\ncore  %v\nmodel %v\nbucket %q", got, want, r.mod.Keys())
	}
	if err := r.fs.CheckInvariants(); err != nil {
		rt.Fatalf("invariants: %v", err)
	}
}
