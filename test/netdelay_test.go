// Delaying a namespace's packets without netem: where the kernel has no
// sch_netem, every packet a host sends goes through an NFQUEUE rule
// (iptables, mangle OUTPUT) to this process, which accepts each one d
// later, in order. It speaks the nfnetlink_queue protocol itself over a
// netlink socket opened inside the namespace: metadata only, one verdict
// per packet.
package test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nfnetlink_queue's constants (linux/netfilter/nfnetlink_queue.h).
const (
	nfnlSubsysQueue    = 3
	nfqnlMsgPacket     = 0
	nfqnlMsgVerdict    = 1
	nfqnlMsgConfig     = 2
	nfqaPacketHdr      = 1
	nfqaVerdictHdr     = 2
	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqnlCfgCmdBind    = 1
	nfqnlCopyMeta      = 1
	nfAccept           = 1
)

// nfDelay holds the packets of one namespace's queue 0 for d each.
type nfDelay struct {
	fd      int
	d       time.Duration
	due     chan nfPacket
	done    chan struct{}
	stopped atomic.Bool // read returns at its next timeout
}

type nfPacket struct {
	id uint32
	at time.Time
}

// delayWithNFQueue delays everything namespace ns sends on eth0 by d, until
// the test ends. It skips the test without the iptables command.
func delayWithNFQueue(t *testing.T, ns string, d time.Duration) {
	t.Helper()
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("this kernel has no netem, and delaying the links without it needs the iptables command: ", err)
	}
	fd, err := netlinkIn(ns)
	if err != nil {
		t.Fatalf("a netfilter netlink socket in %s: %v", ns, err)
	}
	q := &nfDelay{fd: fd, d: d, due: make(chan nfPacket, 1<<16), done: make(chan struct{})}
	if err := q.bind(); err != nil {
		unix.Close(fd)
		t.Fatalf("binding NFQUEUE 0 in %s: %v", ns, err)
	}
	go q.read()
	go q.verdicts()
	t.Cleanup(func() {
		q.stopped.Store(true) // a read blocked on the socket ends at its timeout, not at its close
		<-q.done
		unix.Close(fd)
	})
	out, err := exec.Command("ip", "netns", "exec", ns, "iptables", "-t", "mangle", "-A", "OUTPUT", "-o", "eth0",
		"-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables NFQUEUE in %s: %v: %s", ns, err, out)
	}
}

// netlinkIn opens a NETLINK_NETFILTER socket in namespace ns: a socket
// belongs to the namespace of the thread that made it.
func netlinkIn(ns string) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- result{-1, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{-1, fmt.Errorf("setns: %w", err)}
			return
		}
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		}
		ch <- result{fd, err}
	}()
	r := <-ch
	return r.fd, r.err
}

// message is a netfilter queue message of type typ for queue 0 with attrs.
func message(typ uint16, flags uint16, attrs ...[]byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, 64)
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysQueue<<8|typ)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|flags)
	b = append(b, unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0) // nfgenmsg, res_id = queue 0
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	return b
}

// attr is a netlink attribute, padded to 4 bytes.
func attr(typ uint16, payload []byte) []byte {
	b := make([]byte, 4, 4+len(payload)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(4+len(payload)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// bind binds queue 0 with metadata-only copies and a long queue, and
// checks the kernel's acknowledgements.
func (q *nfDelay) bind() error {
	maxlen := binary.BigEndian.AppendUint32(nil, 1<<15)
	params := append(binary.BigEndian.AppendUint32(nil, 0), nfqnlCopyMeta)
	for _, m := range [][]byte{
		message(nfqnlMsgConfig, unix.NLM_F_ACK, attr(nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, 0})),
		message(nfqnlMsgConfig, unix.NLM_F_ACK, attr(nfqaCfgParams, params)),
		message(nfqnlMsgConfig, unix.NLM_F_ACK, attr(nfqaCfgQueueMaxlen, maxlen)),
	} {
		if err := unix.Sendto(q.fd, m, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		buf := make([]byte, 4096)
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, msg := range msgs {
			if msg.Header.Type == unix.NLMSG_ERROR && len(msg.Data) >= 4 {
				if errno := int32(binary.NativeEndian.Uint32(msg.Data)); errno != 0 {
					return unix.Errno(-errno)
				}
			}
		}
	}
	if err := unix.SetsockoptTimeval(q.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
		return err
	}
	return unix.SetsockoptInt(q.fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
}

// read takes every queued packet's id, due d after it came, until
// stopped.
func (q *nfDelay) read() {
	defer close(q.due)
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if q.stopped.Load() {
			return
		}
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		now := time.Now()
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return
		}
		for _, m := range msgs {
			if m.Header.Type != nfnlSubsysQueue<<8|nfqnlMsgPacket || len(m.Data) < 4 {
				continue
			}
			if id, ok := packetID(m.Data[4:]); ok {
				q.due <- nfPacket{id: id, at: now.Add(q.d)}
			}
		}
	}
}

// packetID finds NFQA_PACKET_HDR's packet id among attributes b.
func packetID(b []byte) (uint32, bool) {
	for len(b) >= 4 {
		l, typ := int(binary.NativeEndian.Uint16(b[0:])), binary.NativeEndian.Uint16(b[2:])&0x3fff
		if l < 4 || l > len(b) {
			return 0, false
		}
		if typ == nfqaPacketHdr && l >= 8 {
			return binary.BigEndian.Uint32(b[4:8]), true
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return 0, false
}

// verdicts accepts each packet when it is due, in order.
func (q *nfDelay) verdicts() {
	defer close(q.done)
	for p := range q.due {
		if wait := time.Until(p.at); wait > 0 {
			time.Sleep(wait)
		}
		v := binary.BigEndian.AppendUint32(nil, nfAccept)
		v = binary.BigEndian.AppendUint32(v, p.id)
		_ = unix.Sendto(q.fd, message(nfqnlMsgVerdict, 0, attr(nfqaVerdictHdr, v)), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	}
}
