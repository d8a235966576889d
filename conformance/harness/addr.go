package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// FreeAddr is a loopback address free when it is called, for a listener the mount opens
// (--metrics-addr, the pprof endpoint). Its port is below the kernel's ephemeral range
// (32768 and up by default), which is where every server a test starts on port 0 gets its
// port: one taken from that range was once handed to the test's S3 server, started in
// between, and the mount could not bind it.
func FreeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue // in use: try another
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return ""
}
