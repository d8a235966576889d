package read

import "testing"

func TestBufPoolSizes(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want int
	}{{0, -1}, {4 << 10, 12}, {64 << 10, 16}, {8 << 20, 23}, {1 << 30, 30}, {3 << 20, -1}, {2048, -1}, {2 << 30, -1}} {
		if got := pooledClass(tt.n); got != tt.want {
			t.Errorf("pooledClass(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
	for _, n := range []int64{64 << 10, 3<<20 + 5} {
		b := getBuf(n)
		if int64(len(b)) != n {
			t.Fatalf("getBuf(%d): %d bytes", n, len(b))
		}
		putBuf(b)
		if b := getBuf(n); int64(len(b)) != n || int64(cap(b)) != n {
			t.Fatalf("getBuf(%d) after putBuf: len %d cap %d", n, len(b), cap(b))
		}
	}
}
