package local

import (
	"bytes"
	"io"
	"os"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// mnode is the model of one visible record. base: the bucket has an object for the path
// (so a delete leaves a tombstone); dirty: changes the bucket lacks.
type mnode struct {
	kind   Kind
	data   []byte
	mode   uint32
	target string
	dirty  bool
	base   bool
	// copying: a rename queued a copy to the path whose result is not recorded yet; removing
	// or replacing the node then owes a delete chained to that copy, not a tombstone.
	copying bool
}

// model is the layer as a map: visible nodes, and tombstones (path -> is a directory).
type model struct {
	nodes map[string]*mnode
	tomb  map[string]bool
}

func (m *model) paths(keep func(string, *mnode) bool) []string {
	var out []string
	for p, n := range m.nodes {
		if keep(p, n) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (m *model) hasChildren(dir string) bool {
	for p := range m.nodes {
		if p != "" && p != dir {
			if d, _ := keymap.Split(p); d == dir {
				return true
			}
		}
	}
	return false
}

func (m *model) create(p string, n *mnode) {
	isDir, ok := m.tomb[p]
	n.base = ok && isDir == (n.kind == KindDir)
	n.dirty = true
	delete(m.tomb, p)
	m.nodes[p] = n
}

func (m *model) remove(p string) {
	if n := m.nodes[p]; n.base && !n.copying {
		m.tomb[p] = n.kind == KindDir
	}
	delete(m.nodes, p)
}

func (m *model) rename(src, dst string) {
	replaced := m.nodes[dst]
	moved := m.paths(func(p string, _ *mnode) bool { return p == src || strings.HasPrefix(p, src+"/") })
	delete(m.nodes, dst)
	for _, p := range moved {
		np := dst + p[len(src):]
		n := m.nodes[p]
		delete(m.nodes, p)
		isDir, ok := m.tomb[np]
		n.copying = n.base || n.copying
		n.base = ok && isDir == (n.kind == KindDir)
		if p == src && replaced != nil {
			n.base = replaced.base && !replaced.copying
		}
		delete(m.tomb, np)
		n.dirty = true
		m.nodes[np] = n
	}
}

// expectErr is the errno class POSIX gives for rename, or nil.
func (m *model) renameErr(src, dst string) error {
	s, d := m.nodes[src], m.nodes[dst]
	switch {
	case src == dst:
		return nil
	case strings.HasPrefix(dst, src+"/"):
		return ErrInvalid
	case d == nil:
		return nil
	case s.kind == KindDir && d.kind != KindDir:
		return ErrNotDir
	case s.kind != KindDir && d.kind == KindDir:
		return ErrIsDir
	case d.kind == KindDir && m.hasChildren(dst):
		return ErrNotEmpty
	}
	return nil
}

func TestLayerMatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp("", "synclocal-prop-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		opts := testOpts()
		l, err := Open(dir, opts)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { l.Close() }()
		m := &model{nodes: map[string]*mnode{"": {kind: KindDir, mode: 0o755}}, tomb: map[string]bool{}}

		must := func(err error) {
			if err != nil {
				rt.Fatalf("unexpected error: %v", err)
			}
		}
		want := func(got, exp error) {
			if (exp == nil) != (got == nil) || (exp != nil && !isErr(got, exp)) {
				rt.Fatalf("got error %v, want %v", got, exp)
			}
		}
		pick := func(rt *rapid.T, label string, keep func(string, *mnode) bool) string {
			ps := m.paths(keep)
			if len(ps) == 0 {
				rt.Skip("nothing to pick")
			}
			return rapid.SampledFrom(ps).Draw(rt, label)
		}
		anyPath := func(p string, _ *mnode) bool { return p != "" }
		isKind := func(k Kind) func(string, *mnode) bool {
			return func(p string, n *mnode) bool { return p != "" && n.kind == k }
		}
		dirs := func(p string, n *mnode) bool { return n.kind == KindDir }
		newPath := func(rt *rapid.T) string {
			d := pick(rt, "dir", dirs)
			return keymap.Join(d, rapid.SampledFrom([]string{"a", "b", "c", "a-"}).Draw(rt, "name"))
		}
		mkErr := func(p string) error {
			if m.nodes[p] != nil {
				return ErrExists
			}
			return nil
		}

		rt.Repeat(map[string]func(*rapid.T){
			"create": func(rt *rapid.T) {
				p := newPath(rt)
				_, err := l.Create(p, 0o644, 0, 0)
				want(err, mkErr(p))
				if err == nil {
					m.create(p, &mnode{kind: KindFile, mode: 0o644})
				}
			},
			"mkdir": func(rt *rapid.T) {
				p := newPath(rt)
				_, err := l.Mkdir(p, 0o755, 0, 0)
				want(err, mkErr(p))
				if err == nil {
					m.create(p, &mnode{kind: KindDir, mode: 0o755})
				}
			},
			"symlink": func(rt *rapid.T) {
				p := newPath(rt)
				target := rapid.StringMatching(`[a-z/.]{1,8}`).Draw(rt, "target")
				_, err := l.Symlink(target, p, 0, 0)
				want(err, mkErr(p))
				if err == nil {
					m.create(p, &mnode{kind: KindSymlink, mode: 0o777, target: target})
				}
			},
			"write": func(rt *rapid.T) {
				p := pick(rt, "file", isKind(KindFile))
				off := rapid.IntRange(0, 20).Draw(rt, "off")
				data := rapid.SliceOfN(rapid.Byte(), 0, 10).Draw(rt, "data")
				_, err := l.WriteAt(p, data, int64(off))
				must(err)
				n := m.nodes[p]
				if len(data) > 0 {
					if end := off + len(data); end > len(n.data) {
						n.data = append(n.data, make([]byte, end-len(n.data))...)
					}
					copy(n.data[off:], data)
				}
				n.dirty = true
			},
			"handle": func(rt *rapid.T) {
				// A write through a handle with a snapshot upload in the middle (invariant 4).
				p := pick(rt, "file", isKind(KindFile))
				h, err := l.BeginWrite(p)
				must(err)
				rc, gen, _, err := l.Snapshot(p)
				must(err)
				snap, _ := io.ReadAll(rc)
				rc.Close()
				n := m.nodes[p]
				if !bytes.Equal(snap, n.data) {
					rt.Fatalf("snapshot %q, model %q", snap, n.data)
				}
				_, err = h.WriteAt([]byte("h"), 0)
				must(err)
				clean, err := l.MarkUploaded(p, gen, syncrule.Version{ETag: "x"})
				must(err)
				if clean {
					rt.Fatalf("clean after a write past the snapshot")
				}
				must(h.Close())
				if len(n.data) == 0 {
					n.data = []byte{0}
				}
				n.data[0] = 'h'
				n.dirty, n.base, n.copying = true, true, false
			},
			"truncate": func(rt *rapid.T) {
				p := pick(rt, "file", isKind(KindFile))
				size := rapid.IntRange(0, 30).Draw(rt, "size")
				must(l.Truncate(p, int64(size)))
				n := m.nodes[p]
				if size < len(n.data) {
					n.data = n.data[:size]
				} else {
					n.data = append(n.data, make([]byte, size-len(n.data))...)
				}
				n.dirty = true
			},
			"remove": func(rt *rapid.T) {
				p := pick(rt, "path", func(p string, n *mnode) bool { return p != "" && n.kind != KindDir })
				must(l.Remove(p))
				m.remove(p)
			},
			"rmdir": func(rt *rapid.T) {
				p := pick(rt, "dir", isKind(KindDir))
				err := l.Rmdir(p)
				if m.hasChildren(p) {
					want(err, ErrNotEmpty)
					return
				}
				must(err)
				m.remove(p)
			},
			"rename": func(rt *rapid.T) {
				src := pick(rt, "src", anyPath)
				dst := newPath(rt)
				exp := m.renameErr(src, dst)
				want(l.Rename(src, dst), exp)
				if exp == nil && src != dst {
					m.rename(src, dst)
				}
			},
			"chmod": func(rt *rapid.T) {
				p := pick(rt, "path", func(string, *mnode) bool { return true })
				mode := rapid.Uint32Range(0, 0o777).Draw(rt, "mode")
				must(l.Chmod(p, mode))
				m.nodes[p].mode = mode
				if p != "" {
					m.nodes[p].dirty = true
				}
			},
			"upload": func(rt *rapid.T) {
				p := pick(rt, "path", anyPath)
				upload(rt, l, p)
				m.nodes[p].dirty, m.nodes[p].base, m.nodes[p].copying = false, true, false
			},
			"reopen": func(rt *rapid.T) {
				must(l.Close())
				l, err = Open(dir, opts)
				must(err)
			},
			"": func(rt *rapid.T) { compare(rt, l, m) },
		})
	})
}

func isErr(got, exp error) bool {
	e, ok := exp.(*errnoError)
	return ok && (got == exp || errorsIs(got, e))
}

func errorsIs(err error, target *errnoError) bool {
	for err != nil {
		if err == target {
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// compare walks the layer from the root and checks it against the model: the tree, every
// file's bytes, modes, symlink targets, and the dirty set (visible dirty paths and tombstones).
func compare(rt *rapid.T, l *Layer, m *model) {
	seen := map[string]bool{"": true}
	var walk func(dir string)
	walk = func(dir string) {
		ls, err := l.List(dir)
		if err != nil {
			rt.Fatalf("list %q: %v", dir, err)
		}
		if !sort.SliceIsSorted(ls, func(i, j int) bool { return ls[i].Path < ls[j].Path }) {
			rt.Fatalf("list %q not sorted", dir)
		}
		for _, e := range ls {
			n := m.nodes[e.Path]
			if n == nil {
				rt.Fatalf("layer has %q, model does not", e.Path)
			}
			seen[e.Path] = true
			if e.Kind != n.kind || e.Attr.Mode != n.mode || e.Target != n.target {
				rt.Fatalf("%q: layer %v %o %q, model %v %o %q", e.Path, e.Kind, e.Attr.Mode, e.Target, n.kind, n.mode, n.target)
			}
			switch e.Kind {
			case KindDir:
				walk(e.Path)
			case KindFile:
				buf := make([]byte, e.Size+1)
				k, err := l.ReadAt(e.Path, buf, 0)
				if err != io.EOF {
					rt.Fatalf("read %q: %v", e.Path, err)
				}
				if !bytes.Equal(buf[:k], n.data) || e.Size != int64(len(n.data)) {
					rt.Fatalf("%q: layer %q (size %d), model %q", e.Path, buf[:k], e.Size, n.data)
				}
			}
		}
	}
	walk("")
	if err := checkIndexes(l); err != nil {
		rt.Fatal(err)
	}
	for p := range m.nodes {
		if !seen[p] {
			rt.Fatalf("model has %q, layer does not", p)
		}
	}
	d, err := l.Dirty()
	if err != nil {
		rt.Fatal(err)
	}
	var got, exp []string
	for _, i := range d {
		got = append(got, i.Path)
	}
	for p, n := range m.nodes {
		if n.dirty {
			exp = append(exp, p)
		}
	}
	for p := range m.tomb {
		exp = append(exp, p)
	}
	sort.Strings(exp)
	if strings.Join(got, "|") != strings.Join(exp, "|") {
		rt.Fatalf("dirty: layer %q, model %q", got, exp)
	}
}
