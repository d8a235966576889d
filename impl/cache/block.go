package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
)

// blockID names one block of one version of one object. The bucket and the block size are
// the codec's: one cache instance serves one bucket with one block size.
type blockID struct {
	key, etag string
	index     int64
}

// block is one block's bytes and what is known of the object's size.
type block struct {
	data []byte // never written once published: waiters of a flight share it
	size int64  // the whole object's size; -1 when the fetch did not learn it
}

// A block file (or shared-cache object) is:
//
//	magic "ms3c" | version u16 | len(bucket) u16 | len(key) u16 | len(etag) u16 |
//	block size u64 | block index u64 | object size i64 (-1 unknown) | data length u32 |
//	bucket | key | etag | data | crc32c of everything before it (u32)
//
// all little-endian. The checksum covers the header too: a flipped bit in the object size
// or data length would otherwise make a block lie about EOF while its data verifies. It is
// a trailer, so a truncated file fails it; and a file is renamed into place only once
// written, so a crash leaves either no block or one the checksum rejects.
const (
	magic      = "ms3c"
	version    = 1
	fixedLen   = 4 + 2 + 2 + 2 + 2 + 8 + 8 + 8 + 4
	trailerLen = 4
	maxNameLen = 1<<16 - 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt: a block failed verification. It is dropped and fetched again, never served.
var errCorrupt = errors.New("corrupt cache block")

// codec names, encodes and verifies the blocks of one bucket at one block size.
type codec struct {
	bucket string
	bs     int64
}

// name is the block's file name (and shared object name): a hash, because keys are long
// and may hold any byte. 128 bits make a collision practically impossible; the header
// still names the block, and decode checks it, so one could never serve wrong bytes.
func (c codec) name(id blockID) string {
	h := sha256.New()
	var buf []byte
	for _, s := range []string{c.bucket, id.key, id.etag} {
		buf = binary.AppendUvarint(buf[:0], uint64(len(s)))
		h.Write(buf)
		h.Write([]byte(s))
	}
	buf = binary.LittleEndian.AppendUint64(buf[:0], uint64(c.bs))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(id.index))
	buf = binary.LittleEndian.AppendUint16(buf, version)
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// encode returns the block's file contents as the header and the trailer to write around
// b.data, which is not copied: a disk write is then three writes and no copy. ok is false
// for names too long to record (S3 keys are at most 1 KiB, so only a foreign store could
// produce one): such a block is simply not cached.
func (c codec) encode(id blockID, b block) (head, trailer []byte, ok bool) {
	if len(c.bucket) > maxNameLen || len(id.key) > maxNameLen || len(id.etag) > maxNameLen {
		return nil, nil, false
	}
	head = make([]byte, 0, fixedLen+len(c.bucket)+len(id.key)+len(id.etag))
	head = append(head, magic...)
	head = binary.LittleEndian.AppendUint16(head, version)
	head = binary.LittleEndian.AppendUint16(head, uint16(len(c.bucket)))
	head = binary.LittleEndian.AppendUint16(head, uint16(len(id.key)))
	head = binary.LittleEndian.AppendUint16(head, uint16(len(id.etag)))
	head = binary.LittleEndian.AppendUint64(head, uint64(c.bs))
	head = binary.LittleEndian.AppendUint64(head, uint64(id.index))
	head = binary.LittleEndian.AppendUint64(head, uint64(b.size))
	head = binary.LittleEndian.AppendUint32(head, uint32(len(b.data)))
	head = append(head, c.bucket...)
	head = append(head, id.key...)
	head = append(head, id.etag...)
	sum := crc32.Update(crc32.Checksum(head, castagnoli), castagnoli, b.data)
	return head, binary.LittleEndian.AppendUint32(nil, sum), true
}

// encodeFile is encode as one buffer.
func (c codec) encodeFile(id blockID, b block) ([]byte, bool) {
	head, trailer, ok := c.encode(id, b)
	if !ok {
		return nil, false
	}
	return append(append(append(make([]byte, 0, len(head)+len(b.data)+len(trailer)), head...), b.data...), trailer...), true
}

// decode verifies buf as block id and returns it; the data aliases buf. Any mismatch is
// errCorrupt: a damaged file, another object's block under a colliding name, or a block
// whose claims about the object's size contradict its length.
func (c codec) decode(buf []byte, id blockID) (block, error) {
	bad := func(why string, args ...any) (block, error) {
		return block{}, fmt.Errorf("%w: %q block %d: %s", errCorrupt, id.key, id.index, fmt.Sprintf(why, args...))
	}
	if len(buf) < fixedLen+trailerLen {
		return bad("%d bytes", len(buf))
	}
	body, trailer := buf[:len(buf)-trailerLen], buf[len(buf)-trailerLen:]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(trailer) {
		return bad("checksum mismatch")
	}
	le := binary.LittleEndian
	if string(body[:4]) != magic || le.Uint16(body[4:]) != version {
		return bad("unknown format")
	}
	nb, nk, ne := int(le.Uint16(body[6:])), int(le.Uint16(body[8:])), int(le.Uint16(body[10:]))
	bs, index, size := int64(le.Uint64(body[12:])), int64(le.Uint64(body[20:])), int64(le.Uint64(body[28:]))
	n := int(le.Uint32(body[36:]))
	if fixedLen+nb+nk+ne+n != len(body) {
		return bad("length mismatch")
	}
	names := body[fixedLen:]
	if string(names[:nb]) != c.bucket || string(names[nb:nb+nk]) != id.key ||
		string(names[nb+nk:nb+nk+ne]) != id.etag || bs != c.bs || index != id.index {
		return bad("header names another block")
	}
	data := names[nb+nk+ne:]
	start, end := index*bs, index*bs+int64(n)
	switch {
	case int64(n) > bs:
		return bad("%d bytes in a %d byte block", n, bs)
	case int64(n) < bs && size != end:
		return bad("short block but object size %d", size)
	case size < -1 || (size >= 0 && size < end) || (n == 0 && start > 0):
		return bad("object size %d", size)
	}
	return block{data: data, size: size}, nil
}
