package conformance

import (
	"bytes"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// TestSharedMmapOfReadOnlyFile: numpy.memmap, Arrow and safetensors map files MAP_SHARED; a
// mount that answered reads with direct I/O would make that ENODEV (S1's decision).
func TestSharedMmapOfReadOnlyFile(t *testing.T) {
	m := harness.New(t, harness.Options{})
	body := bytes.Repeat([]byte("weights "), 100000)
	m.Put(t, "model.bin", body)
	f, err := os.Open(m.Path("model.bin"))
	require.NoError(t, err)
	defer f.Close()
	mem, err := syscall.Mmap(int(f.Fd()), 0, len(body), syscall.PROT_READ, syscall.MAP_SHARED)
	require.NoError(t, err, "mmap MAP_SHARED of a read-only file")
	defer syscall.Munmap(mem)
	require.True(t, bytes.Equal(body, mem))
}
