// Package control owns a mount's control channel: the Unix socket over which `mount-s3
// status` and `mount-s3 sync --flush` talk to the mount process. The socket belongs to the
// user who mounted and has mode 0600 in a directory only that user can enter, so only that
// user (and root) can ask. A request is one JSON line; the answer is a stream of JSON lines
// (status.Line) ending with End or Error, so an answer has no size limit. The mount's root
// answers the extended attribute SocketXattr with the socket's path, or, in a mode that keeps
// no extended attributes, lists it in a name (ListedName): a command finds the socket from
// the mount point alone, and a directory that is not a mount-s3 mount's root has no such
// attribute, so nothing is ever written to it.
package control

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mount-s3/mount-s3/impl/status"
)

// SocketXattr is answered on a mount's root with the path of its control socket. A mount
// that keeps no extended attributes (streaming mode) tells the kernel so, and the kernel then
// answers getxattr itself: its root lists ListedName instead.
const SocketXattr = "user.mount-s3.control"

// ListedName is the name a mount's root lists in listxattr to give the socket's path when
// getxattr is not answered: SocketXattr, "=", the path.
func ListedName(socket string) string { return SocketXattr + "=" + socket }

// Request is what a command asks.
type Request struct {
	Op  string `json:"op"`            // OpStatus or OpFlush
	All bool   `json:"all,omitempty"` // OpStatus: every entry after the summary
}

// The operations a mount answers.
const (
	OpStatus = "status"
	OpFlush  = "flush"
)

// Handler answers one request by calling send for each line (send is not safe for concurrent
// use); ctx ends when the command goes away. The server ends the answer: with End, or with Error if the handler fails.
type Handler func(ctx context.Context, req Request, send func(status.Line) error) error

// Server is a mount's listening control socket.
type Server struct {
	ln   *net.UnixListener
	path string
	log  *slog.Logger

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // GUARDED_BY(mu)
	closed  bool                  // GUARDED_BY(mu)
	serving sync.WaitGroup
}

// Dir is where the current user's control sockets live: /run/mount-s3 for root,
// $XDG_RUNTIME_DIR/mount-s3 or the temporary directory's mount-s3-UID for anyone else.
func Dir() string {
	uid := os.Getuid()
	if uid == 0 {
		return "/run/mount-s3"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "mount-s3")
	}
	return filepath.Join(os.TempDir(), "mount-s3-"+strconv.Itoa(uid))
}

// Listen creates the socket of this process in Dir (or, if that cannot be made, in the
// temporary directory's private one). It accepts connections at once; they wait until Serve.
func Listen(log *slog.Logger) (*Server, error) {
	dirs := []string{Dir(), filepath.Join(os.TempDir(), "mount-s3-"+strconv.Itoa(os.Getuid()))}
	var firstErr error
	for _, dir := range dirs {
		s, err := listenIn(dir, log)
		if err == nil {
			return s, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, fmt.Errorf("control socket: %w", firstErr)
}

func listenIn(dir string, log *slog.Logger) (*Server, error) {
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	// The pid names the socket for a person; the random part keeps two mounts apart whose
	// pids are equal in different pid namespaces sharing the directory (containers).
	var r [4]byte
	rand.Read(r[:])
	path := filepath.Join(dir, fmt.Sprintf("%d-%x.sock", os.Getpid(), r))
	// The directory is the user's alone, so the socket is never reachable by anyone else,
	// even before the chmod.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if n := sweep(dir, path, time.Now()); n > 0 && log != nil {
		log.Info("removed control sockets of mounts that are gone", "dir", dir, "count", n)
	}
	return &Server{ln: ln, path: path, log: log, conns: map[net.Conn]struct{}{}}, nil
}

// staleAge is how old a socket must be before sweep may remove it: a mount starting at the
// same moment has bound its socket but may not listen on it yet, and refuses meanwhile.
const staleAge = time.Minute

// sweep removes the sockets in dir of mounts that are gone (a SIGKILLed mount cannot remove
// its own), other than keep: those named for a pid no process has, older than staleAge, that
// refuse a connection. A socket of a live mount in another pid namespace sharing dir answers,
// and stays. It returns how many it removed.
func sweep(dir, keep string, now time.Time) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		pidText, _, ok := strings.Cut(e.Name(), "-")
		pid, err := strconv.Atoi(pidText)
		if p == keep || !ok || err != nil || pid <= 0 || !strings.HasSuffix(e.Name(), ".sock") || e.Type()&os.ModeSocket == 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // a process has that pid (perhaps not a mount; then the socket waits)
		}
		if info, err := e.Info(); err != nil || now.Sub(info.ModTime()) < staleAge {
			continue
		}
		c, err := net.DialTimeout("unix", p, time.Second)
		if err == nil {
			c.Close()
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) && os.Remove(p) == nil {
			removed++
		}
	}
	return removed
}

// privateDir makes dir (mode 0700) or checks that an existing one is a directory of ours that
// no one else can write to: a socket in someone else's directory could be replaced.
func privateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return err
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFDIR:
		return fmt.Errorf("%s is not a directory", dir)
	case int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to uid %d, not to this user", dir, st.Uid)
	case st.Mode&0o077 != 0:
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// Path is the socket's path, which the mount's root answers in SocketXattr.
func (s *Server) Path() string { return s.path }

// Serve answers requests with h until Close.
func (s *Server) Serve(h Handler) {
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.serving.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.serving.Done()
				s.answer(c, h)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
}

// answer reads one request from c and streams the handler's answer. The command going away
// (the other end closed, or Ctrl-C) cancels the handler's context.
func (s *Server) answer(c net.Conn, h Handler) {
	defer c.Close()
	r := bufio.NewReader(c)
	var req Request
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	w := bufio.NewWriter(c)
	enc := json.NewEncoder(w)
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(status.Line{Error: "unreadable request: " + err.Error()})
		w.Flush()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, r) // returns when the command closes its end
		cancel()
	}()
	// Entries are buffered and written in batches; a progress line or the end goes out at
	// once.
	send := func(l status.Line) error {
		if err := enc.Encode(l); err != nil {
			return err
		}
		if l.Progress != nil || l.Summary != nil || w.Buffered() > 32<<10 {
			return w.Flush()
		}
		return nil
	}
	if err := h(ctx, req, send); err != nil {
		if ctx.Err() == nil {
			s.log.Debug("control request failed", "op", req.Op, "error", err.Error())
		}
		send(status.Line{Error: err.Error()})
	} else {
		send(status.Line{End: true})
	}
	w.Flush()
}

// Close stops listening, removes the socket, ends the answers in progress (their commands see
// the connection close) and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.serving.Wait()
	return err
}

// Errors of Dial, for the command to put in words.
var (
	// ErrNotMount: the path is not the root of a mount-s3 mount.
	ErrNotMount = errors.New("not the mount point of a mount-s3 mount")
	// ErrStale: the mount's process is gone and the kernel still has the mount.
	ErrStale = errors.New("the mount's process is gone (transport endpoint is not connected)")
)

// Client is a connection to one mount's control socket.
type Client struct {
	conn   net.Conn
	Socket string
}

// Dial finds the control socket of the mount whose root is mnt and connects to it. It only
// reads an attribute of mnt.
func Dial(mnt string) (*Client, error) {
	buf := make([]byte, 4096)
	n, err := syscall.Getxattr(mnt, SocketXattr, buf)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return nil, ErrStale
	case errors.Is(err, syscall.ENOTSUP):
		if path, ok := listedSocket(mnt); ok {
			return dialSocket(path)
		}
		return nil, ErrNotMount
	case err != nil:
		return nil, ErrNotMount
	}
	return dialSocket(string(buf[:n]))
}

// listedSocket finds the socket's path among the names mnt lists (ListedName).
func listedSocket(mnt string) (string, bool) {
	buf := make([]byte, 64<<10)
	n, err := syscall.Listxattr(mnt, buf)
	if err != nil {
		return "", false
	}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if path, ok := strings.CutPrefix(name, SocketXattr+"="); ok && path != "" {
			return path, true
		}
	}
	return "", false
}

func dialSocket(path string) (*Client, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		var st syscall.Stat_t
		switch {
		case errors.Is(err, syscall.EACCES) && syscall.Stat(filepath.Dir(path), &st) == nil:
			return nil, fmt.Errorf("the control socket %s belongs to the user who mounted (uid %d): run this as that user or as root", path, st.Uid)
		case errors.Is(err, syscall.EACCES):
			return nil, fmt.Errorf("the control socket %s belongs to the user who mounted: run this as that user or as root", path)
		default:
			return nil, fmt.Errorf("the mount's process does not answer on its control socket %s: %v", path, errors.Unwrap(err))
		}
	}
	return &Client{conn: conn, Socket: path}, nil
}

// Do sends req and calls each for every line of the answer until its end. An Error line
// ends it with that error. Closing the client (or returning an error from each) tells the
// mount the command went away.
func (c *Client) Do(req Request, each func(status.Line) error) error {
	b, _ := json.Marshal(req)
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("sending to the control socket %s: %w", c.Socket, err)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(c.conn, 64<<10))
	for {
		var l status.Line
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return errors.New("the mount closed the control connection before answering in full (was it unmounted?)")
			}
			return fmt.Errorf("reading from the control socket %s: %w", c.Socket, err)
		}
		switch {
		case l.Error != "":
			return &RemoteError{Msg: l.Error}
		case l.End:
			return nil
		}
		if err := each(l); err != nil {
			return err
		}
	}
}

// RemoteError is a request the mount answered with an error: the words are the mount's.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }
