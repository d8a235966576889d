package posixmeta

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestDecodeS3fs(t *testing.T) {
	a := Decode(map[string]string{"mode": "33188", "uid": "1000", "gid": "100", "mtime": "1700000000.5"})
	require.Equal(t, Attr{Kind: File, Mode: 0o644, UID: 1000, GID: 100, Mtime: time.Unix(1700000000, 5e8),
		HasMode: true, HasOwner: true, HasMtime: true}, a)
	require.Equal(t, Dir, Decode(map[string]string{"mode": "16877"}).Kind)
	require.Equal(t, uint32(0o755), Decode(map[string]string{"mode": "16877"}).Mode)
	require.Equal(t, Symlink, Decode(map[string]string{"mode": "41471"}).Kind) // 0120777
}

func TestDecodeFSxOnlyWhereS3fsIsSilent(t *testing.T) {
	a := Decode(map[string]string{"file-permissions": "0100664", "file-owner": "7", "file-group": "8"})
	require.Equal(t, Attr{Kind: File, Mode: 0o664, UID: 7, GID: 8, HasMode: true, HasOwner: true}, a)
	a = Decode(map[string]string{"mode": "33216", "file-permissions": "0100664", "uid": "1"})
	require.Equal(t, uint32(0o700), a.Mode)
	require.Equal(t, uint32(1), a.UID)
}

func TestDecodeIgnoresMalformed(t *testing.T) {
	for _, meta := range []map[string]string{
		{}, {"mode": "rw-r--r--"}, {"mode": "-1"}, {"uid": "99999999999"}, {"mtime": "yesterday"},
		{"mtime": "1.x"}, {"file-permissions": "0999"},
	} {
		a := Decode(meta)
		require.False(t, a.HasMode || a.HasMtime || a.HasOwner && a.UID != 0, "%v -> %+v", meta, a)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := Attr{
			Kind:     rapid.SampledFrom([]Kind{File, Dir, Symlink, FIFO, CharDevice, BlockDevice, Socket}).Draw(t, "kind"),
			Mode:     rapid.Uint32Range(0, 0o7777).Draw(t, "mode"),
			UID:      rapid.Uint32().Draw(t, "uid"),
			GID:      rapid.Uint32().Draw(t, "gid"),
			Mtime:    time.Unix(rapid.Int64Range(-1<<40, 1<<40).Draw(t, "sec"), rapid.Int64Range(0, 1e9-1).Draw(t, "nsec")),
			HasMode:  true,
			HasOwner: true,
			HasMtime: true,
		}
		if a.Kind == CharDevice || a.Kind == BlockDevice {
			a.Rdev = rapid.Uint32().Draw(t, "rdev")
		}
		got := Decode(Encode(a))
		if !got.Mtime.Equal(a.Mtime) {
			t.Fatalf("mtime %v -> %v", a.Mtime, got.Mtime)
		}
		got.Mtime = a.Mtime
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("%+v -> %v -> %+v", a, Encode(a), got)
		}
	})
}

// The case rapid found (testdata/rapid/TestEncodeRoundTrip): an mtime past 2262, where a
// time no longer fits in int64 nanoseconds, came back as the zero time.
func TestMtimePast2262RoundTrips(t *testing.T) {
	for _, mtime := range []time.Time{time.Unix(9223372037, 0), time.Unix(1<<40, 999999999), time.Unix(-1<<40, 1)} {
		got := Decode(Encode(Attr{Kind: File, Mtime: mtime, HasMtime: true}))
		require.True(t, got.HasMtime)
		require.True(t, got.Mtime.Equal(mtime), "%v -> %v", mtime, got.Mtime)
	}
}

func TestEncodeMatchesS3fs(t *testing.T) {
	m := Encode(Attr{Kind: File, Mode: 0o644, UID: 0, GID: 0, Mtime: time.Unix(1700000000, 0), HasMtime: true})
	require.Equal(t, map[string]string{"mode": "33188", "uid": "0", "gid": "0", "mtime": "1700000000"}, m)
	require.Equal(t, "16877", Encode(Attr{Kind: Dir, Mode: 0o755})["mode"])
}

// Special files are stored as s3fs-fuse stores them: the type bits in the mode, and the
// device number of a device in "rdev".
func TestSpecialFilesMatchS3fs(t *testing.T) {
	for _, c := range []struct {
		mode string
		kind Kind
	}{{"4516", FIFO}, {"8592", CharDevice}, {"25008", BlockDevice}, {"49645", Socket}} {
		a := Decode(map[string]string{"mode": c.mode, "rdev": "2049"})
		require.Equal(t, c.kind, a.Kind, c.mode)
		require.True(t, a.Kind.Special())
		require.Equal(t, c.mode, Encode(a)["mode"])
	}
	dev := Decode(map[string]string{"mode": "25008", "rdev": "2049"}) // 060660 brw-rw----, 8:1
	require.Equal(t, uint32(0o660), dev.Mode)
	require.Equal(t, uint32(2049), dev.Rdev)
	require.Equal(t, "2049", Encode(dev)["rdev"])
	require.NotContains(t, Encode(Attr{Kind: FIFO, Mode: 0o644}), "rdev", "only devices have a device number")
	require.False(t, File.Special() || Dir.Special() || Symlink.Special())
}

func TestTimesBeforeTheEpoch(t *testing.T) {
	for _, tm := range []time.Time{time.Unix(-5, 0), time.Unix(-2, 5e8), time.Unix(-1<<35, 1), time.Unix(1<<33, 7)} {
		m := Encode(Attr{Mtime: tm, HasMtime: true})
		got := Decode(m)
		require.True(t, got.HasMtime, m)
		require.True(t, got.Mtime.Equal(tm), "%v -> %v -> %v", tm, m, got.Mtime)
	}
	require.Equal(t, "-2.5", Encode(Attr{Mtime: time.Unix(-2, 5e8), HasMtime: true})["mtime"])
}

func TestXattrsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x := rapid.MapOf(rapid.StringN(1, 40, -1), rapid.SliceOfN(rapid.Byte(), 0, 100)).Draw(t, "xattrs")
		enc := EncodeXattrs(x)
		for i := 0; i < len(enc); i++ {
			if enc[i] >= 0x80 || enc[i] < 0x20 {
				t.Fatalf("not plain ASCII: %q", enc)
			}
		}
		got := DecodeXattrs(enc)
		if len(x) == 0 {
			require.Nil(t, got)
			return
		}
		require.Equal(t, len(x), len(got))
		for k, v := range x {
			require.Equal(t, string(v), string(got[k]), k)
		}
	})
}

// A header as s3fs-fuse writes it: the percent-encoded JSON of base64 values.
func TestXattrsReadS3fsHeader(t *testing.T) {
	got := DecodeXattrs("%7B%22user.test%22%3A%22dGVzdA%3D%3D%22%2C%22security.selinux%22%3A%22c3lzdGVtX3U6b2JqZWN0X3I6ZmlsZV90OnMw%22%7D")
	require.Equal(t, map[string][]byte{"user.test": []byte("test"), "security.selinux": []byte("system_u:object_r:file_t:s0")}, got)
	require.Equal(t, "%7B%22user.test%22%3A%22dGVzdA%3D%3D%22%7D", EncodeXattrs(map[string][]byte{"user.test": []byte("test")}))
	require.Nil(t, DecodeXattrs("%7Bnot json"))
	require.Nil(t, DecodeXattrs("%zz"))
	require.Equal(t, map[string][]byte{"user.b": []byte("ok")}, DecodeXattrs(percentEncode(`{"user.a":"***","user.b":"b2s="}`)), "a bad value is skipped, not the rest")
}

func TestXattrsTravelWithTheAttributes(t *testing.T) {
	a := Attr{Kind: File, Mode: 0o600, HasMode: true, Xattrs: map[string][]byte{"user.k": []byte("v")}}
	m := Encode(a)
	require.Equal(t, "%7B%22user.k%22%3A%22dg%3D%3D%22%7D", m[HeaderXattr])
	require.Equal(t, a.Xattrs, Decode(m).Xattrs)
	require.NotContains(t, Encode(Attr{Kind: File}), HeaderXattr)
	require.True(t, FitsMetadata(a))
	a.Xattrs["user.big"] = make([]byte, 1500)
	require.False(t, FitsMetadata(a), "2,000 bytes of base64 do not fit in S3's 2 KiB of metadata")
}

func TestKeptXattrNamespaces(t *testing.T) {
	for name, kept := range map[string]bool{
		"user.x": true, "trusted.x": true, "security.selinux": true, "security.capability": true,
		"system.posix_acl_access": false, "system.posix_acl_default": false, "x": false, "user": false,
	} {
		if KeptXattr(name) != kept {
			t.Errorf("KeptXattr(%q) = %v, want %v", name, !kept, kept)
		}
	}
}
