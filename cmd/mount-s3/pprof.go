package main

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
)

// MOUNT_S3_PPROF=HOST:PORT serves Go's profiles (CPU, heap, goroutines, and the block and
// mutex profiles, which it turns on) at http://HOST:PORT/debug/pprof/, for finding where a
// slow workload waits. Unset (the default), nothing listens and nothing is sampled.
func init() {
	addr := os.Getenv("MOUNT_S3_PPROF")
	if addr == "" {
		return
	}
	runtime.SetBlockProfileRate(10_000) // one sample per 10 µs blocked
	runtime.SetMutexProfileFraction(10)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			fmt.Fprintf(os.Stderr, "MOUNT_S3_PPROF=%s: %v\n", addr, err)
		}
	}()
}
