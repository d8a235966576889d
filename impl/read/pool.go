package read

import (
	"math/bits"
	"sync"
)

// Part buffers are recycled: a sequential stream allocates its whole size in parts, and
// allocating means zeroing each part first and collecting it later. Only power-of-two sizes
// (every part once the window is large, the window's first doublings, the 64 KiB of a random
// read) are pooled, so a pooled buffer never holds more memory than the budget accounted for
// it; other sizes are plain allocations. A buffer goes back only once no one can read it (its
// chunk's last reference, see Reader.unref), and idle pooled buffers are freed by the garbage
// collector like any sync.Pool's.
const (
	minPooledShift = 12 // 4 KiB
	maxPooledShift = 30 // 1 GiB
)

var bufPools [maxPooledShift + 1]sync.Pool

// pooledClass returns the pool of buffers of exactly n bytes, or -1.
func pooledClass(n int64) int {
	if n <= 0 || n&(n-1) != 0 {
		return -1
	}
	s := bits.TrailingZeros64(uint64(n))
	if s < minPooledShift || s > maxPooledShift {
		return -1
	}
	return s
}

// getBuf returns a buffer of n bytes with arbitrary content.
func getBuf(n int64) []byte {
	if s := pooledClass(n); s >= 0 {
		if b, ok := bufPools[s].Get().(*[]byte); ok {
			return *b
		}
	}
	return make([]byte, n)
}

// putBuf recycles b, which nobody may read or write any more.
func putBuf(b []byte) {
	if s := pooledClass(int64(cap(b))); s >= 0 && len(b) == cap(b) {
		bufPools[s].Put(&b)
	}
}
