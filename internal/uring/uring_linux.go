// Package uring batches socket reads and writes into one system call with
// io_uring: on hosts where a system call costs a microsecond (virtual
// machines that trap them), an event loop issuing a dozen reads or writes
// per round saves most of that.
//
// Only what the event loop needs is here: non-blocking SEND and RECV
// (MSG_DONTWAIT: a socket that is not ready completes with EAGAIN, as
// read and write do, instead of being waited on by the kernel), submitted
// together and waited for together. Buffers need only stay valid during
// Submit, which returns once every operation has completed.
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"
)

const (
	sysSetup = 425 // io_uring_setup, io_uring_enter: the same number on every architecture
	sysEnter = 426

	opSend = 26 // IORING_OP_SEND
	opRecv = 27 // IORING_OP_RECV

	enterGetEvents = 1 // IORING_ENTER_GETEVENTS
	featSingleMmap = 1 // IORING_FEAT_SINGLE_MMAP

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	msgDontWait = syscall.MSG_DONTWAIT
	msgNoSignal = syscall.MSG_NOSIGNAL
)

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// sqe is struct io_uring_sqe (64 bytes), with the fields SEND and RECV use.
type sqe struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	msgFlags uint32
	userData uint64
	bufIndex uint16
	persona  uint16
	spliceFD int32
	addr3    uint64
	pad      uint64
}

// cqe is struct io_uring_cqe (16 bytes).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Ring is one io_uring instance. It is not safe for concurrent use: one
// event loop owns it.
type Ring struct {
	fd                   int
	sqRing, cqRing, sqeM []byte
	sqHead, sqTail       *uint32
	sqMask               uint32
	sqArray              []uint32
	sqes                 []sqe
	cqHead, cqTail       *uint32
	cqMask               uint32
	cqes                 []cqe
	queued               uint32 // prepared, not yet submitted
}

// ErrUnavailable wraps the reason io_uring cannot be used here (an old
// kernel, io_uring_disabled, a seccomp profile such as Docker's default).
var ErrUnavailable = errors.New("io_uring unavailable")

// New sets up a ring for up to entries operations per Submit.
func New(entries uint32) (*Ring, error) {
	if raceBuild {
		return nil, fmt.Errorf("%w: built with the race detector", ErrUnavailable)
	}
	var p params
	p.cqEntries = entries
	fd, _, errno := syscall.RawSyscall(sysSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrUnavailable, errno)
	}
	r := &Ring{fd: int(fd)}
	if err := r.mmap(&p); err != nil {
		r.Close()
		return nil, err
	}
	if err := r.checkNoWait(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// checkNoWait makes sure a receive from an empty non-blocking socket
// completes at once with EAGAIN: kernels that instead wait for data (as
// some before 5.19 may, not honouring MSG_DONTWAIT) would make Submit
// block. Submit is not used here: it would wait too.
func (r *Ring) checkNoWait() error {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	buf := make([]byte, 1)
	r.Recv(fds[0], buf, 0)
	if err := r.submit(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var res int32 = 1
	found := false
	r.reap(func(_ uint64, n int32) { res, found = n, true })
	if !found || res != -int32(syscall.EAGAIN) {
		return fmt.Errorf("%w: a non-blocking receive did not complete at once with EAGAIN (completed: %v, result %d)", ErrUnavailable, found, res)
	}
	return nil
}

func (r *Ring) mmap(p *params) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	if p.features&featSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	prot, flags := syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE
	if r.sqRing, err = syscall.Mmap(r.fd, offSQRing, sqSize, prot, flags); err != nil {
		return fmt.Errorf("io_uring: mapping the submission ring: %w", err)
	}
	r.cqRing = r.sqRing
	if p.features&featSingleMmap == 0 {
		if r.cqRing, err = syscall.Mmap(r.fd, offCQRing, cqSize, prot, flags); err != nil {
			return fmt.Errorf("io_uring: mapping the completion ring: %w", err)
		}
	}
	if r.sqeM, err = syscall.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), prot, flags); err != nil {
		return fmt.Errorf("io_uring: mapping the submission entries: %w", err)
	}
	sq, cq := unsafe.Pointer(&r.sqRing[0]), unsafe.Pointer(&r.cqRing[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Add(sq, p.sqOff.array)), p.sqEntries)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeM[0])), p.sqEntries)
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Add(cq, p.cqOff.cqes)), p.cqEntries)
	return nil
}

// Close releases the ring.
func (r *Ring) Close() {
	if r.sqeM != nil {
		_ = syscall.Munmap(r.sqeM)
	}
	if r.cqRing != nil && unsafe.SliceData(r.cqRing) != unsafe.SliceData(r.sqRing) {
		_ = syscall.Munmap(r.cqRing)
	}
	if r.sqRing != nil {
		_ = syscall.Munmap(r.sqRing)
	}
	syscall.Close(r.fd)
}

// Cap is how many operations one Submit can carry.
func (r *Ring) Cap() int { return len(r.sqes) }

// Send prepares a non-blocking send of p on fd; tag comes back with its
// result. It reports false when the ring is full (Submit first).
func (r *Ring) Send(fd int, p []byte, tag uint64) bool {
	return r.prepare(opSend, fd, p, tag)
}

// Recv prepares a non-blocking receive into p from fd.
func (r *Ring) Recv(fd int, p []byte, tag uint64) bool {
	return r.prepare(opRecv, fd, p, tag)
}

func (r *Ring) prepare(op uint8, fd int, p []byte, tag uint64) bool {
	if int(r.queued) == len(r.sqes) || len(p) == 0 {
		return false
	}
	tail := *r.sqTail + r.queued // only this thread writes the tail
	i := tail & r.sqMask
	r.sqes[i] = sqe{opcode: op, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(&p[0]))), len: uint32(len(p)),
		msgFlags: msgDontWait | msgNoSignal, userData: tag}
	r.sqArray[i] = i
	r.queued++
	return true
}

// reap reports the completions there are, without waiting, and how many.
func (r *Ring) reap(done func(tag uint64, res int32)) uint32 {
	head, tail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
	n := tail - head
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		done(c.userData, c.res)
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// Submit starts every prepared operation, waits until all have completed
// (they normally complete inline), and calls done for each with its tag
// and result: the bytes sent or received, or a negated errno (-EAGAIN:
// the socket was not ready). The buffers given to Send and Recv may be
// reused afterwards.
func (r *Ring) Submit(done func(tag uint64, res int32)) error {
	n := r.queued
	if n == 0 {
		return nil
	}
	if err := r.submit(); err != nil {
		r.reap(done) // whatever did complete is reported
		return err
	}
	for seen := uint32(0); ; {
		seen += r.reap(done)
		if seen >= n {
			return nil
		}
		// One went asynchronous after all: wait for the rest.
		if _, _, errno := syscall.RawSyscall6(sysEnter, uintptr(r.fd), 0, uintptr(n-seen), enterGetEvents, 0, 0); errno != 0 && errno != syscall.EINTR {
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

// submit hands the prepared entries to the kernel without waiting:
// non-blocking sends and receives complete inline, so their completions
// are posted before the call returns. Not waiting also means a short
// submission cannot leave the call waiting for operations the kernel
// never took.
func (r *Ring) submit() error {
	n := r.queued
	atomic.StoreUint32(r.sqTail, *r.sqTail+n) // publishes the entries written by prepare
	r.queued = 0
	for submitted := uint32(0); submitted < n; {
		got, _, errno := syscall.RawSyscall6(sysEnter, uintptr(r.fd), uintptr(n-submitted), 0, 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
		submitted += uint32(got)
	}
	return nil
}
