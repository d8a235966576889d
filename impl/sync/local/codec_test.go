package local

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/spec/syncrule"
	bolt "go.etcd.io/bbolt"
	"pgregory.net/rapid"
)

// fill sets every leaf field of v, however deep, from draw: a field that encodeRec leaves out
// then decodes as zero and the round trip fails. With nonzero, no leaf is left at its zero
// value (booleans true, numbers and strings drawn until they are not zero).
func fill(t *rapid.T, v reflect.Value, nonzero bool, path string) {
	if v.Type() == reflect.TypeFor[time.Time]() {
		s := rapid.Int64Range(-1<<40, 1<<40).Draw(t, path+".s")
		ns := rapid.Int64Range(0, 999_999_999).Draw(t, path+".ns")
		if nonzero && s == 0 && ns == 0 {
			s = 1
		}
		v.Set(reflect.ValueOf(time.Unix(s, ns).UTC()))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(t, v.Field(i), nonzero, path+"."+v.Type().Field(i).Name)
		}
	case reflect.Bool:
		v.SetBool(nonzero || rapid.Bool().Draw(t, path))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		max := uint64(1)<<(v.Type().Bits()) - 1
		if v.Type().Bits() == 64 {
			max = ^uint64(0)
		}
		n := rapid.Uint64Range(0, max).Draw(t, path)
		if nonzero && n == 0 {
			n = 1
		}
		v.SetUint(n)
	case reflect.Int64:
		n := rapid.Int64().Draw(t, path)
		if nonzero && n == 0 {
			n = -1
		}
		v.SetInt(n)
	case reflect.String:
		s := rapid.String().Draw(t, path)
		if nonzero && s == "" {
			s = "x"
		}
		v.SetString(s)
	case reflect.Map:
		m := rapid.MapOf(rapid.String(), rapid.SliceOf(rapid.Byte())).Draw(t, path)
		if nonzero && len(m) == 0 {
			m = map[string][]byte{"user.x": []byte("1")}
		}
		for k, b := range m {
			if b == nil {
				m[k] = []byte{} // what decoding gives for an empty value
			}
		}
		v.Set(reflect.ValueOf(m))
	default:
		t.Fatalf("fill: %s is a %s, which the codec test does not know; add it to encodeRec, decodeRecBinary and fill", path, v.Kind())
	}
}

// Every field of a record survives encoding, whatever its value: a field added to record
// without a place in the binary form fails here (the nonzero case leaves no field zero).
func TestRecordCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var r record
		fill(rt, reflect.ValueOf(&r).Elem(), rapid.Bool().Draw(rt, "nonzero"), "record")
		got, err := decodeRecBinary(encodeRec(&r))
		require.NoError(rt, err)
		require.Equal(rt, &r, got)
	})
}

// A record cut short or with bytes after its end is refused, never read as another record
// (and never panics).
func TestRecordCodecRefusesDamage(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var r record
		fill(rt, reflect.ValueOf(&r).Elem(), false, "record")
		v := encodeRec(&r)
		cut := rapid.IntRange(1, len(v)-1).Draw(rt, "cut")
		_, err := decodeRecBinary(v[:cut])
		require.Error(rt, err, "cut at %d of %d", cut, len(v))
		_, err = decodeRecBinary(append(v, 0))
		require.Error(rt, err)
	})
}

// A sync dir of format 2 keeps JSON records: it opens, its records read as they were, a
// record that changes is rewritten in the binary form, and the format is raised so that a
// format-2 binary refuses the sync dir rather than misread it.
func TestFormat2SyncDirOpensAndUpgrades(t *testing.T) {
	l, _ := newLayer(t)
	writeFile(t, l, "a", "alpha")
	writeFile(t, l, "b", "beta")
	before := mustStat(t, l, "a")
	// Make it what a format-2 binary wrote: every record as JSON.
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bNodes)
		var keys, vals [][]byte
		err := b.ForEach(func(k, v []byte) error {
			r, err := decodeRec(pathOfNodeKey(k), v)
			if err != nil {
				return err
			}
			j, err := json.Marshal(r)
			keys, vals = append(keys, append([]byte(nil), k...)), append(vals, j)
			return err
		})
		for i := range keys {
			if err == nil {
				err = b.Put(keys[i], vals[i])
			}
		}
		if err == nil {
			err = tx.Bucket(bMeta).Put(kFormat, []byte("2"))
		}
		return err
	}))
	l = reopen(t, l)
	raw := func(path string) []byte {
		var v []byte
		require.NoError(t, l.db.View(func(tx *bolt.Tx) error {
			v = append(v, tx.Bucket(bNodes).Get(nodeKey(path))...)
			require.Equal(t, formatVersion, string(tx.Bucket(bMeta).Get(kFormat)))
			return nil
		}))
		return v
	}
	require.Equal(t, byte('{'), raw("a")[0], "records are not rewritten at open")
	after := mustStat(t, l, "a")
	require.True(t, before.Attr.Mtime.Equal(after.Attr.Mtime))
	before.Attr.Mtime, after.Attr.Mtime = time.Time{}, time.Time{}
	before.Attr.Ctime, after.Attr.Ctime = time.Time{}, time.Time{}
	before.State.DirtySince, after.State.DirtySince = time.Time{}, time.Time{}
	before.State.LastUsed, after.State.LastUsed = time.Time{}, time.Time{}
	require.Equal(t, before, after)
	require.Equal(t, "alpha", readFile(t, l, "a"))

	writeFile(t, l, "a", "alpha2")
	require.Equal(t, recBinary, raw("a")[0])
	require.Equal(t, byte('{'), raw("b")[0])
	l = reopen(t, l)
	require.Equal(t, "alpha2", readFile(t, l, "a"))
	require.Equal(t, "beta", readFile(t, l, "b"))
}

func BenchmarkRecordDecode(b *testing.B) {
	now := time.Now()
	r := &record{Kind: KindFile, ID: 1234, Attr: Attr{Mode: 0o644, UID: 1000, GID: 1000, Mtime: now, Ctime: now},
		State: syncrule.State{Exists: true, Data: syncrule.LocalData, Size: 4096, Gen: 3, CleanGen: 3, ContentGen: 2,
			Base: syncrule.Version{ETag: `"0123456789abcdef0123456789abcdef"`}, LastUsed: now}}
	for _, form := range []struct {
		name string
		v    []byte
	}{{"binary", encodeRec(r)}, {"json", must(json.Marshal(r))}} {
		b.Run(form.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := decodeRec("d/f", form.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A flag byte with a bit no field uses is damage, not a record.
func TestRecordCodecRefusesUnknownFlags(t *testing.T) {
	r := &record{Kind: KindFile, State: syncrule.State{Exists: true}, Imported: true}
	v := encodeRec(r)
	// The record ends with the flags of Imported and AttrPending, then PendingCopy and
	// PendingCopyGen, one 0 byte each.
	require.Equal(t, []byte{1, 0, 0}, v[len(v)-3:])
	_, err := decodeRecBinary(v)
	require.NoError(t, err)
	v[len(v)-3] |= 0x80
	_, err = decodeRecBinary(v)
	require.Error(t, err)
}

// The dirs index decides lookups: a sync dir without it is refused at open, and a format-2
// one, whose index only counted links, gets it made afresh.
func TestDirsIndexIsCheckedAndRebuiltOnUpgrade(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Mkdir("d", 0o755, 0, 0)
	require.NoError(t, err)
	writeFile(t, l, "f", "x")
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bMeta).Put(kFormat, []byte("2")); err != nil {
			return err
		}
		return tx.Bucket(bDirs).Put(nodeKey("f"), []byte{}) // stale: f is a file
	}))
	l = reopen(t, l)
	_, err = l.Stat("f/x")
	require.Error(t, err, "a file is nobody's parent")
	require.NoError(t, l.db.View(func(tx *bolt.Tx) error {
		require.Nil(t, tx.Bucket(bDirs).Get(nodeKey("f")))
		require.NotNil(t, tx.Bucket(bDirs).Get(nodeKey("d")))
		return nil
	}))

	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bDirs) }))
	require.NoError(t, l.Close())
	_, err = Open(l.dir, l.opts)
	require.ErrorIs(t, err, ErrCorrupt)
}
