package posixmeta

import (
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
		{"mtime": "-5"}, {"mtime": "1.x"}, {"file-permissions": "0999"},
	} {
		a := Decode(meta)
		require.False(t, a.HasMode || a.HasMtime || a.HasOwner && a.UID != 0, "%v -> %+v", meta, a)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := Attr{
			Kind:     rapid.SampledFrom([]Kind{File, Dir, Symlink}).Draw(t, "kind"),
			Mode:     rapid.Uint32Range(0, 0o7777).Draw(t, "mode"),
			UID:      rapid.Uint32().Draw(t, "uid"),
			GID:      rapid.Uint32().Draw(t, "gid"),
			Mtime:    time.Unix(rapid.Int64Range(0, 1<<40).Draw(t, "sec"), rapid.Int64Range(0, 1e9-1).Draw(t, "nsec")),
			HasMode:  true,
			HasOwner: true,
			HasMtime: true,
		}
		got := Decode(Encode(a))
		if !got.Mtime.Equal(a.Mtime) {
			t.Fatalf("mtime %v -> %v", a.Mtime, got.Mtime)
		}
		got.Mtime = a.Mtime
		if got != a {
			t.Fatalf("%+v -> %v -> %+v", a, Encode(a), got)
		}
	})
}

func TestEncodeMatchesS3fs(t *testing.T) {
	m := Encode(Attr{Kind: File, Mode: 0o644, UID: 0, GID: 0, Mtime: time.Unix(1700000000, 0), HasMtime: true})
	require.Equal(t, map[string]string{"mode": "33188", "uid": "0", "gid": "0", "mtime": "1700000000"}, m)
	require.Equal(t, "16877", Encode(Attr{Kind: Dir, Mode: 0o755})["mode"])
}
