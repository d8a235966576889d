package posixmeta

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
)

// MaxMetadataBytes is what S3 allows for an object's user metadata: the names and values of
// all x-amz-meta-* headers together (2 KiB). Extended attributes share it with the rest.
const MaxMetadataBytes = 2048

// ReservedMetadataBytes is the part of MaxMetadataBytes kept for what a writer adds beside
// the POSIX attributes (mount-s3's op marker) and for attributes that grow after an extended
// attribute was set (a longer mtime, a larger uid).
const ReservedMetadataBytes = 192

// FitsMetadata reports whether the metadata of a fits in what S3 allows, leaving the reserve.
func FitsMetadata(a Attr) bool {
	return MetadataSize(Encode(a)) <= MaxMetadataBytes-ReservedMetadataBytes
}

// MetadataSize is how much of MaxMetadataBytes meta uses, counted as S3 counts it: each
// name (without "x-amz-meta-") and value in UTF-8.
func MetadataSize(meta map[string]string) int {
	n := 0
	for k, v := range meta {
		n += len(k) + len(v)
	}
	return n
}

// KeptXattr reports whether name is in a namespace whose extended attributes travel in
// HeaderXattr (Y3): user., trusted. and security. system.* are ACLs and the like, which the
// kernel would have to enforce; such names another client put in an object's metadata are
// kept with it but not served.
func KeptXattr(name string) bool {
	return strings.HasPrefix(name, "user.") || strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")
}

// EncodeXattrs is the value of HeaderXattr for the attributes x, or "" when there are none.
// Names are in byte order, so the same set always encodes the same.
func EncodeXattrs(x map[string][]byte) string {
	if len(x) == 0 {
		return ""
	}
	names := make([]string, 0, len(x))
	for k := range x {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		b.Write(name)
		b.WriteString(`:"`)
		b.WriteString(base64.StdEncoding.EncodeToString(x[k]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return percentEncode(b.String())
}

// DecodeXattrs reads a HeaderXattr value. A malformed header, or a malformed value in it, is
// skipped as absent, as Decode treats a bad header: one object's metadata must not make it
// unreadable.
func DecodeXattrs(v string) map[string][]byte {
	if v == "" {
		return nil
	}
	plain, err := url.PathUnescape(v)
	if err != nil {
		return nil
	}
	var raw map[string]string
	if json.Unmarshal([]byte(plain), &raw) != nil {
		return nil
	}
	out := make(map[string][]byte, len(raw))
	for k, enc := range raw {
		if b, err := base64.StdEncoding.DecodeString(enc); err == nil && k != "" {
			out[k] = b
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// percentEncode escapes every byte but the unreserved characters of RFC 3986, so the value is
// plain ASCII, which is all S3 metadata values may hold.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
