package mount

import (
	"bytes"
	"os"
	"strconv"
)

// tgid returns the process (thread group) id of the thread pid that the kernel names in a
// FUSE request, so that two threads of one program count as the same opener. It returns pid
// itself when /proc cannot tell (the thread has exited).
func tgid(pid uint32) uint32 {
	status, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/status")
	if err != nil {
		return pid
	}
	for _, line := range bytes.Split(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Tgid:")); ok {
			if n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 32); err == nil {
				return uint32(n)
			}
		}
	}
	return pid
}
