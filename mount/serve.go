package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
)

// opServer serves the operations of one FUSE connection to a fuseutil.FileSystem.
//
// jacobsa/fuse's own server (fuseutil.NewFileSystemServer) reads every request on one
// goroutine and hands each to a new goroutine. The operation then waits for the Go scheduler
// to find it a thread, and the reader's thread is asleep in read(2) on /dev/fuse: on a busy
// machine that hand-off cost more than the operation. A 4 KiB write through a sync mount took
// 81 µs, against 24 µs when the goroutine that read the request runs it. So here a pool of
// workers takes turns at reading: the worker whose turn it is reads a request, passes the
// turn on (to an idle worker, or to a new one if none is idle), and runs the request itself,
// as the threads of libfuse's multi-threaded loop do. A new goroutine per request also grew
// its stack for every request (a quarter of the CPU of an `ls -l`); a worker keeps its stack.
//
// One worker reads at a time, as Connection.ReadOp requires, so requests are still taken in
// the kernel's order; forgets run on the reading worker without passing the turn (they come
// in floods, need no reply and never wait); every other operation may run concurrently with
// the next.
//
// It also ends serving, instead of crashing the process, when the kernel aborts the
// connection (at some unmounts, and fusectl's abort does it on purpose). served is closed
// when serving has ended.
type opServer struct {
	fs     fuseutil.FileSystem
	log    *slog.Logger
	served chan struct{}

	turn    chan struct{} // holds the turn to read while nobody has it; closed at the end
	idle    atomic.Int32  // workers waiting for the turn
	end     chan error    // the worker that meets the connection's end says so (nil: normal)
	workers sync.WaitGroup
}

// maxIdleWorkers: past this many waiting for the turn, a worker that finishes exits.
const maxIdleWorkers = 16

// ServeOps serves c until the kernel closes it, waits for the operations still running, and
// destroys the file system.
func (s *opServer) ServeOps(c *fuse.Connection) {
	defer close(s.served)
	s.turn, s.end = make(chan struct{}, 1), make(chan error, 1)
	s.turn <- struct{}{}
	s.workers.Add(1)
	go s.work(c)
	err := <-s.end
	// The worker that met the end kept the turn: nobody passes it on any more, and the
	// others exit as they come back for it.
	close(s.turn)
	s.workers.Wait()
	s.fs.Destroy()
	switch {
	case err == nil:
	case errors.Is(err, syscall.ECONNABORTED) || strings.Contains(err.Error(), "connection abort"):
		s.log.Warn("the kernel aborted the FUSE connection; the mount is gone", "error", err.Error())
	default:
		panic(fmt.Errorf("reading a FUSE request: %w", err))
	}
}

// work is one worker: it waits for its turn, reads requests until one needs running, passes
// the turn on and runs that request, and comes back for another turn.
func (s *opServer) work(c *fuse.Connection) {
	defer s.workers.Done()
	for {
		s.idle.Add(1)
		_, ok := <-s.turn
		s.idle.Add(-1)
		if !ok {
			return // serving has ended
		}
		for {
			ctx, op, err := c.ReadOp()
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				s.end <- err
				return
			}
			if _, forget := op.(*fuseops.ForgetInodeOp); forget {
				s.handle(c, ctx, op)
				continue
			}
			s.turn <- struct{}{}
			if s.idle.Load() == 0 {
				// Nobody is waiting for the turn: a new worker takes it, so that reading
				// never waits for a request that blocks.
				s.workers.Add(1)
				go s.work(c)
			}
			s.handle(c, ctx, op)
			break
		}
		if s.idle.Load() >= maxIdleWorkers {
			return
		}
	}
}

// handle runs one operation on the file system and replies to the kernel.
func (s *opServer) handle(c *fuse.Connection, ctx context.Context, op any) {
	var err error
	switch o := op.(type) {
	default:
		err = fuse.ENOSYS
	case *fuseops.StatFSOp:
		err = s.fs.StatFS(ctx, o)
	case *fuseops.LookUpInodeOp:
		err = s.fs.LookUpInode(ctx, o)
	case *fuseops.GetInodeAttributesOp:
		err = s.fs.GetInodeAttributes(ctx, o)
	case *fuseops.SetInodeAttributesOp:
		err = s.fs.SetInodeAttributes(ctx, o)
	case *fuseops.ForgetInodeOp:
		err = s.fs.ForgetInode(ctx, o)
	case *fuseops.BatchForgetOp:
		err = s.fs.BatchForget(ctx, o)
		if err == fuse.ENOSYS {
			// A file system without it takes the forgets one by one, as jacobsa's server
			// gives them: a lookup count must never be left behind.
			err = nil
			for _, e := range o.Entries {
				if err = s.fs.ForgetInode(ctx, &fuseops.ForgetInodeOp{Inode: e.Inode, N: e.N, OpContext: o.OpContext}); err != nil {
					break
				}
			}
		}
	case *fuseops.MkDirOp:
		err = s.fs.MkDir(ctx, o)
	case *fuseops.MkNodeOp:
		err = s.fs.MkNode(ctx, o)
	case *fuseops.CreateFileOp:
		err = s.fs.CreateFile(ctx, o)
	case *fuseops.CreateLinkOp:
		err = s.fs.CreateLink(ctx, o)
	case *fuseops.CreateSymlinkOp:
		err = s.fs.CreateSymlink(ctx, o)
	case *fuseops.RenameOp:
		err = s.fs.Rename(ctx, o)
	case *fuseops.RmDirOp:
		err = s.fs.RmDir(ctx, o)
	case *fuseops.UnlinkOp:
		err = s.fs.Unlink(ctx, o)
	case *fuseops.OpenDirOp:
		err = s.fs.OpenDir(ctx, o)
	case *fuseops.ReadDirOp:
		err = s.fs.ReadDir(ctx, o)
	case *fuseops.ReadDirPlusOp:
		err = s.fs.ReadDirPlus(ctx, o)
	case *fuseops.ReleaseDirHandleOp:
		err = s.fs.ReleaseDirHandle(ctx, o)
	case *fuseops.OpenFileOp:
		err = s.fs.OpenFile(ctx, o)
	case *fuseops.ReadFileOp:
		err = s.fs.ReadFile(ctx, o)
	case *fuseops.WriteFileOp:
		err = s.fs.WriteFile(ctx, o)
	case *fuseops.SyncFileOp:
		err = s.fs.SyncFile(ctx, o)
	case *fuseops.FlushFileOp:
		err = s.fs.FlushFile(ctx, o)
	case *fuseops.ReleaseFileHandleOp:
		err = s.fs.ReleaseFileHandle(ctx, o)
	case *fuseops.ReadSymlinkOp:
		err = s.fs.ReadSymlink(ctx, o)
	case *fuseops.RemoveXattrOp:
		err = s.fs.RemoveXattr(ctx, o)
	case *fuseops.GetXattrOp:
		err = s.fs.GetXattr(ctx, o)
	case *fuseops.ListXattrOp:
		err = s.fs.ListXattr(ctx, o)
	case *fuseops.SetXattrOp:
		err = s.fs.SetXattr(ctx, o)
	case *fuseops.FallocateOp:
		err = s.fs.Fallocate(ctx, o)
	case *fuseops.SyncFSOp:
		err = s.fs.SyncFS(ctx, o)
	}
	c.Reply(ctx, err)
}
