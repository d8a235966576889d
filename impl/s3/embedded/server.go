// Package embedded owns the in-process S3-compatible server: gofakes3 behind a loopback
// HTTP listener, in memory or persisted to a directory, with the fixes that make it
// behave like S3 where the product depends on it (see middleware.go, list.go and
// backend.go for each gofakes3 quirk and its fix). Tests and the CLI's local mode use it;
// the rest of the product reaches it only through impl/s3's SDK store, over real HTTP.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	bolt "go.etcd.io/bbolt"
)

// Options configures Start.
type Options struct {
	// Dir persists objects to DIR/objects.bolt (a bbolt database, fsynced on every write).
	// "" keeps everything in memory. In-progress multipart uploads are always in memory.
	Dir string
	// Addr is the listen address; "" means 127.0.0.1 on a free port.
	Addr string
	// Buckets are created if missing.
	Buckets []string
	// Middleware, if set, wraps the server's handler: tests use it to make the server
	// misbehave (refuse a part, answer slowly) at the HTTP level, where a mount in another
	// process sees it.
	Middleware func(http.Handler) http.Handler
}

// DBFile is the database file name inside Options.Dir.
const DBFile = "objects.bolt"

// Server is a running embedded S3 server.
type Server struct {
	ln      net.Listener
	http    *http.Server
	backend gofakes3.Backend
	db      *bolt.DB // nil in memory
	done    chan error
}

// Start starts a server and returns once it accepts connections.
func Start(opts Options) (*Server, error) {
	s := &Server{done: make(chan error, 1)}
	var inner gofakes3.Backend
	if opts.Dir == "" {
		inner = s3mem.New()
	} else {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("embedded s3: %w", err)
		}
		// A timeout, because bbolt's file lock otherwise blocks forever when another
		// server (or a not yet closed one) holds the same directory.
		db, err := bolt.Open(filepath.Join(opts.Dir, DBFile), 0o600, &bolt.Options{Timeout: 2 * time.Second})
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, ErrInUse{Dir: opts.Dir, Pid: holder(opts.Dir)}
		}
		if err != nil {
			return nil, fmt.Errorf("embedded s3: opening %s: %w", opts.Dir, err)
		}
		// Who holds the store, for the next process that finds it locked.
		os.WriteFile(filepath.Join(opts.Dir, holderFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
		s.db = db
		inner = s3bolt.New(db)
	}
	be := &backend{Backend: inner, now: time.Now, copyReads: s.db != nil}
	if s.db != nil {
		be.maxObject = maxBoltObject
	}
	s.backend = be

	for _, b := range opts.Buckets {
		if err := s.CreateBucket(b); err != nil {
			s.closeDB()
			return nil, err
		}
	}

	faker := gofakes3.New(s.backend,
		gofakes3.WithAutoBucket(false),
		gofakes3.WithLogger(gofakes3.DiscardLog()),
		// Clients sign with their own clock; a test that fakes time must not be refused.
		gofakes3.WithTimeSkewLimit(0),
	)
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.closeDB()
		return nil, fmt.Errorf("embedded s3: %w", err)
	}
	s.ln = ln
	var handler http.Handler = &fixes{next: faker.Server(), backend: s.backend}
	if opts.Middleware != nil {
		handler = opts.Middleware(handler)
	}
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		// gofakes3 writes some error responses twice; net/http's complaint about it is noise.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { s.done <- s.http.Serve(ln) }()
	return s, nil
}

// holderFile names the process that has the store open (its pid); stale once it exits.
const holderFile = "holder.pid"

// ErrInUse: another process has the store open (bbolt allows one).
type ErrInUse struct {
	Dir string
	Pid int // 0 if unknown
}

func (e ErrInUse) Error() string {
	if e.Pid > 0 {
		return fmt.Sprintf("embedded store %s is in use by process %d (stop that mount first: umount its mount point, or kill %d)", e.Dir, e.Pid, e.Pid)
	}
	return fmt.Sprintf("embedded store %s is in use by another process (stop that mount first)", e.Dir)
}

func holder(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, holderFile))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Buckets lists the store's buckets.
func (s *Server) Buckets() ([]string, error) {
	list, err := s.backend.ListBuckets()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range list {
		out = append(out, b.Name)
	}
	return out, nil
}

// CreateBucket creates a bucket if it does not exist.
func (s *Server) CreateBucket(name string) error {
	ok, err := s.backend.BucketExists(name)
	if err != nil {
		return fmt.Errorf("embedded s3: bucket %q: %w", name, err)
	}
	if ok {
		return nil
	}
	if err := s.backend.CreateBucket(name); err != nil && !gofakes3.IsAlreadyExists(err) {
		return fmt.Errorf("embedded s3: creating bucket %q: %w", name, err)
	}
	return nil
}

// URL is the endpoint to give the SDK (path-style addressing), e.g. http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Backend is the storage behind the server, for tests that change objects behind a
// client's back. Writes through it get the same metadata handling as writes over HTTP.
func (s *Server) Backend() gofakes3.Backend { return s.backend }

// Close stops the server, dropping open connections, and closes the database.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = s.http.Close()
	}
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if derr := s.closeDB(); err == nil {
		err = derr
	}
	return err
}

func (s *Server) closeDB() error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}
