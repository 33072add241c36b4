"""An AF_PACKET socket on one link: send whole Ethernet frames, receive the ones a filter keeps.

Why a packet tap (ETH_P_ALL) and not a protocol socket: macvlan and ipvlan hand a frame addressed
to a child's MAC to the child before the parent's protocol handlers run, but packet taps on the
parent see every frame the parent receives, the children's included (tcpdump on a macvlan parent
shows them). The DHCP server's unicast answers to a container's MAC and the ARP replies to a
container therefore reach the plugin on the parent, with no need to enter the container.

A classic BPF filter (SO_ATTACH_FILTER) runs in the kernel, so a busy LAN costs the daemon only
the frames it asked for; it is attached before the socket is bound, so no unfiltered frame is ever
queued. Frames the host itself sends (PACKET_OUTGOING) are skipped. The kernel bounds what waits
in the socket (SO_RCVBUF): a reader that falls behind loses frames, it never grows.

A tap on a parent also sees the frames of the parent's VLANs: the kernel moves an 802.1Q tag into
the frame's metadata before taps run, so the tagged frame looks like one of the parent's own LAN.
Every filter therefore first drops frames whose tag names a VLAN (an ARP reply on VLAN 30 is no
conflict on the untagged LAN; priority-tagged frames, VLAN 0, are the untagged LAN's).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import fcntl
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_MULTICAST = 0
# <linux/sockios.h>, <linux/if.h>: a link's flags, index and MAC, asked through a socket of its
# namespace (this one's: its opener may live in another namespace).
SIOCGIFFLAGS = 0x8913
SIOCGIFHWADDR = 0x8927
SIOCGIFINDEX = 0x8933
IFF_UP = 0x1
IFF_RUNNING = 0x40  # up and with carrier: the operational state is up
IFNAMSIZ = 16
IFREQ_SIZE = 40
TP_STATUS_CSUMNOTREADY = 1 << 3
# struct tpacket_auxdata: status, len, snaplen, mac, net, vlan_tci, vlan_tpid
AUXDATA = struct.Struct("IIIHHHH")
CLONE_NEWNET = 0x40000000
MAX_FRAME = 9216  # a jumbo frame; more is truncated, and nothing we parse is that long
RECEIVE_BUFFER = 256 * 1024

# One classic BPF instruction: (code, jt, jf, k), as in <linux/filter.h>.
Instruction = tuple[int, int, int, int]

# Opcodes used by the programs below (BPF_CLASS | BPF_SIZE | BPF_MODE, BPF_JMP | op | BPF_K).
LD_W_ABS = 0x20
LD_H_ABS = 0x28
LD_B_ABS = 0x30
LDX_B_MSH = 0xB1  # X = 4 * (P[k] & 0xf): the IPv4 header length
LD_H_IND = 0x48
JEQ_K = 0x15
JSET_K = 0x45
RET_K = 0x06
ACCEPT = (RET_K, 0, 0, MAX_FRAME)
DROP = (RET_K, 0, 0, 0)
# Linux ancillary loads (SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT, + SKF_AD_VLAN_TAG): whether the
# frame came with an 802.1Q tag (moved into metadata), and its tag control information.
SKF_AD_VLAN_TAG = 0xFFFFF000 + 44
SKF_AD_VLAN_TAG_PRESENT = 0xFFFFF000 + 48
VLAN_VID_MASK = 0x0FFF


def untagged(*program: Instruction) -> tuple[Instruction, ...]:
    """``program`` for the frames of the link's own LAN only: a frame whose (already stripped)
    802.1Q tag names a VLAN goes to the DROP appended at the end.

    The presence is tested first: kernels before 6.2 keep the tag control of a frame that a
    VLAN link has already taken (a tap on eth0.30 sees VLAN 30's frames with the tag marked
    absent but its value still there).
    """
    return (
        (LD_B_ABS, 0, 0, SKF_AD_VLAN_TAG_PRESENT),
        (JEQ_K, 2, 0, 0),
        (LD_H_ABS, 0, 0, SKF_AD_VLAN_TAG),
        (JSET_K, len(program), 0, VLAN_VID_MASK),
        *program,
        DROP,
    )


# ARP frames (EtherType at offset 12).
ARP_FILTER: tuple[Instruction, ...] = untagged(
    (LD_H_ABS, 0, 0, 12),
    (JEQ_K, 0, 1, 0x0806),
    ACCEPT,
    DROP,
)

# ICMPv6 neighbour advertisements with no extension header (RFC 4861 forbids none, but a DAD
# answer never carries one): EtherType 0x86dd, next header 58 at 20, ICMPv6 type 136 at 54.
NEIGHBOUR_ADVERT_FILTER: tuple[Instruction, ...] = untagged(
    (LD_H_ABS, 0, 0, 12),
    (JEQ_K, 0, 5, 0x86DD),
    (LD_B_ABS, 0, 0, 20),
    (JEQ_K, 0, 3, 58),
    (LD_B_ABS, 0, 0, 54),
    (JEQ_K, 0, 1, 136),
    ACCEPT,
    DROP,
)

# Either of the two: what says who holds an address (driver/lan/claims.py).
ARP_OR_NEIGHBOUR_ADVERT_FILTER: tuple[Instruction, ...] = untagged(
    (LD_H_ABS, 0, 0, 12),
    (JEQ_K, 5, 0, 0x0806),
    (JEQ_K, 0, 5, 0x86DD),
    (LD_B_ABS, 0, 0, 20),
    (JEQ_K, 0, 3, 58),
    (LD_B_ABS, 0, 0, 54),
    (JEQ_K, 0, 1, 136),
    ACCEPT,
    DROP,
)


def arp_sender_filter(address: ipaddress.IPv4Address) -> tuple[Instruction, ...]:
    """ARP frames whose sender IP (offset 28) is ``address``: the answers to a probe for it; the
    LAN's other ARP traffic never wakes the prober."""
    return untagged(
        (LD_H_ABS, 0, 0, 12),
        (JEQ_K, 0, 3, 0x0806),
        (LD_W_ABS, 0, 0, 28),
        (JEQ_K, 0, 1, int(address)),
        ACCEPT,
        DROP,
    )


def neighbour_advert_filter(target: ipaddress.IPv6Address) -> tuple[Instruction, ...]:
    """Neighbour advertisements (as NEIGHBOUR_ADVERT_FILTER) whose target (offset 62) is
    ``target``, compared one 32-bit word at a time."""
    words = [int.from_bytes(target.packed[i : i + 4], "big") for i in range(0, 16, 4)]
    compare: list[Instruction] = []
    for n, word in enumerate(words):
        to_drop = 2 * (len(words) - n) - 1  # the comparisons after this one, then ACCEPT
        compare += [(LD_W_ABS, 0, 0, 62 + 4 * n), (JEQ_K, 0, to_drop, word)]
    return untagged(
        (LD_H_ABS, 0, 0, 12),
        (JEQ_K, 0, 5 + len(compare), 0x86DD),
        (LD_B_ABS, 0, 0, 20),
        (JEQ_K, 0, 3 + len(compare), 58),
        (LD_B_ABS, 0, 0, 54),
        (JEQ_K, 0, 1 + len(compare), 136),
        *compare,
        ACCEPT,
        DROP,
    )


# IPv4 UDP to port 68 (a DHCP client), first fragments only.
DHCP_CLIENT_FILTER: tuple[Instruction, ...] = untagged(
    (LD_H_ABS, 0, 0, 12),
    (JEQ_K, 0, 8, 0x0800),
    (LD_B_ABS, 0, 0, 23),
    (JEQ_K, 0, 6, 17),
    (LD_H_ABS, 0, 0, 20),
    (JSET_K, 4, 0, 0x1FFF),
    (LDX_B_MSH, 0, 0, 14),
    (LD_H_IND, 0, 0, 16),
    (JEQ_K, 0, 1, 68),
    ACCEPT,
    DROP,
)


@dataclass(frozen=True)
class Received:
    """A frame the tap received, and what the kernel said about it."""

    data: bytes
    # TP_STATUS_CSUMNOTREADY: a sender on this host left the transport checksum to offload (a
    # veth peer's UDP socket, for one) and the frame never crossed a wire: there is no checksum
    # to verify yet, and nothing that could have corrupted it.
    checksum_pending: bool


class PacketSocket:
    """A filtered packet tap on ``link`` that can also send frames out of it.

    ``netns`` (a name under /run/netns) opens it in that namespace without moving the caller:
    tests drive links in namespaces they made; the daemon passes None (its own namespace).
    Raises ``OSError`` when the link does not exist or the socket cannot be made.
    """

    def __init__(self, sock: socket.socket, link: str) -> None:
        self._sock = sock
        self.link = link

    @classmethod
    def open(cls, link: str, program: Sequence[Instruction], netns: str | None = None) -> Self:
        sock = _socket_in(netns) if netns else _new_socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            _attach_filter(sock, program)
            sock.bind((link, ETH_P_ALL))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return cls(sock, link)

    def send(self, frame: bytes) -> None:
        self._sock.send(frame)

    # The timeout is the call's own result (None), not a cancellation: hence a parameter.
    async def receive(self, timeout: float) -> bytes | None:  # noqa: ASYNC109
        """The next frame received on the link that passed the filter, or None after ``timeout``
        seconds."""
        received = await self.receive_frame(timeout)
        return None if received is None else received.data

    async def receive_frame(self, timeout: float) -> Received | None:  # noqa: ASYNC109
        """`receive`, with what the kernel said about the frame."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                data, ancillary, _flags, address = self._sock.recvmsg(MAX_FRAME, AUXDATA_SPACE)
            except BlockingIOError:
                left = deadline - loop.time()
                if left <= 0 or not await self._readable(left):
                    return None
                continue
            if address[2] != PACKET_OUTGOING:
                return Received(bytes(data), _checksum_pending(ancillary))
            if loop.time() >= deadline:
                return None

    async def _readable(self, seconds: float) -> bool:
        """Wait until the socket has a frame to read; False after ``seconds``."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self._sock.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            async with asyncio.timeout(seconds):
                await ready
            return True
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)

    def hardware_address(self) -> str:
        """The link's own MAC, "aa:bb:cc:dd:ee:ff"; ``OSError`` (ENODEV) once the link is gone."""
        data = self._ifreq(SIOCGIFHWADDR)
        # A struct sockaddr follows the name: sa_family (2 bytes), then the address.
        return ":".join(f"{byte:02x}" for byte in data[IFNAMSIZ + 2 : IFNAMSIZ + 8])

    def flags(self) -> int:
        """The link's IFF_* flags: IFF_UP (brought up), IFF_RUNNING (and it has carrier)."""
        flags: int = struct.unpack_from("H", self._ifreq(SIOCGIFFLAGS), IFNAMSIZ)[0]
        return flags

    def join_multicast(self, mac: bytes) -> None:
        """Receive the frames sent to the multicast ``mac`` while this socket is open, also where
        the NIC filters multicast (PACKET_MR_MULTICAST: the kernel adds it to the link's list)."""
        index: int = struct.unpack_from("i", self._ifreq(SIOCGIFINDEX), IFNAMSIZ)[0]
        mreq = struct.pack("iHH8s", index, PACKET_MR_MULTICAST, len(mac), mac)
        self._sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)

    def _ifreq(self, request: int) -> bytes:
        return fcntl.ioctl(
            self._sock.fileno(), request, self.link.encode().ljust(IFREQ_SIZE, b"\0")
        )

    def close(self) -> None:
        self._sock.close()

    async def aclose(self) -> None:
        """Close it on a worker thread: the kernel waits for an RCU grace period (about 10 ms)
        before a packet socket is gone, and the event loop must not wait with it."""
        await asyncio.to_thread(self._sock.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            # The work was cancelled (a Docker call that gave up, a shutdown): rare, and the
            # socket must be gone before the cancellation goes on, so close it here and now.
            self.close()
            return
        closing = asyncio.ensure_future(self.aclose())
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await asyncio.wait([closing])  # cancelled while closing: the close still ends first
            raise


AUXDATA_SPACE = socket.CMSG_SPACE(AUXDATA.size)


def _checksum_pending(ancillary: list[tuple[int, int, bytes]]) -> bool:
    for level, kind, value in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= AUXDATA.size:
            status: int = AUXDATA.unpack_from(value)[0]
            return bool(status & TP_STATUS_CSUMNOTREADY)
    return False


def _new_socket() -> socket.socket:
    # Protocol 0: the socket receives nothing until bind names ETH_P_ALL, after the filter is on.
    return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)


def _attach_filter(sock: socket.socket, program: Sequence[Instruction]) -> None:
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _socket_in(netns: str) -> socket.socket:
    """A new socket in ``netns``: made by a thread that enters it (setns changes only the calling
    thread), so the event loop's thread never leaves its namespace. A socket keeps the namespace
    it was made in."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def make() -> None:
        try:
            target = os.open(os.path.join("/run/netns", netns), os.O_RDONLY)
            try:
                if _libc.setns(target, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    reason = os.strerror(err)
                    raise OSError(err, f"cannot enter network namespace {netns}: {reason}")
            finally:
                os.close(target)
            # This thread ends right after; its namespace dies with it.
            made.append(_new_socket())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=make, name="pymacvlan-netns-socket")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]
