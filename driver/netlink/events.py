"""The kernel's link notifications (RTNLGRP_LINK), read into bounded batches.

A netlink socket of its own, bound to the link group, and read by the event loop whenever it is
readable: every link added, changed, renamed or deleted in the namespace arrives here. Nothing is
queued per message. Each batch is the set of names and indices seen since the last one, capped at
``max_pending`` entries; the reader looks the links up again, so a notification is only a hint.
What cannot be kept is reported instead of dropped silently:

* the kernel drops notifications when the socket's receive buffer is full and then fails the
  next read with ENOBUFS (an event storm while the loop was busy);
* more links changed than one batch holds.

Either way the batch says ``overrun``, and its reader resyncs from a full dump of the links.
pyroute2's own notification reader is not used: it files every message in a queue without bound
and treats ENOBUFS as the end of the socket. pyroute2 only makes the socket inside a namespace
(tests); the messages are read here with the kernel's own layouts (include/uapi/linux/netlink.h,
rtnetlink.h, if_link.h), because only two fields are needed: the index and the name.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from typing import Final

from pyroute2.netns import create_socket

from driver.errors import LinkError
from driver.links import LinkChanges

_NETLINK_ROUTE: Final = 0
_RTMGRP_LINK: Final = 0x1  # the multicast group of RTNLGRP_LINK (1 << (1 - 1))
_RTM_NEWLINK: Final = 16
_RTM_DELLINK: Final = 17
_IFLA_IFNAME: Final = 3
_NLA_TYPE_MASK: Final = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER

_NLMSGHDR: Final = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFINFOMSG: Final = struct.Struct("=BxHiII")  # family, pad, type, index, flags, change
_RTATTR: Final = struct.Struct("=HH")  # length, type

_READ_SIZE: Final = 1 << 16  # larger than any one notification datagram
_READS_PER_WAKEUP: Final = 64  # then the loop serves others; it calls back while data waits
DEFAULT_MAX_PENDING: Final = 512  # names and indices in one batch


class LinkEvents:
    """A subscription to one namespace's link notifications. ``await LinkEvents.open()``."""

    def __init__(self, sock: socket.socket, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._sock = sock
        self._max_pending = max_pending
        self._names: set[str] = set()
        self._indices: set[int] = set()
        self._overrun = False
        self._failure: str | None = None
        self._ready = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._read)
        self.overruns = 0  # ENOBUFS reads and full batches so far: for diagnostics and tests

    @classmethod
    async def open(
        cls,
        netns: str | None = None,
        *,
        rcvbuf: int | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> LinkEvents:
        """Subscribe in the daemon's namespace (``netns`` None) or, for tests, in ``netns``.

        ``rcvbuf``: the socket's receive buffer in bytes (the kernel's default when None).
        """
        try:
            if netns is None:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_ROUTE)
            else:
                # flags=0: never create a namespace that is missing (pyroute2's default would).
                sock = create_socket(
                    netns, socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_ROUTE, flags=0
                )
            try:
                sock.setblocking(False)
                if rcvbuf is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                sock.bind((0, _RTMGRP_LINK))
            except BaseException:
                sock.close()
                raise
        except OSError as exc:
            where = f"network namespace {netns}" if netns else "this network namespace"
            raise LinkError(f"cannot subscribe to the link changes of {where}: {exc}") from exc
        return cls(sock, max_pending)

    async def next(self) -> LinkChanges:
        """The changes since the last call; waits until there is at least one."""
        await self._ready.wait()
        if self._failure is not None:
            raise LinkError(self._failure)
        changes = LinkChanges(frozenset(self._names), frozenset(self._indices), self._overrun)
        self._names.clear()
        self._indices.clear()
        self._overrun = False
        self._ready.clear()
        return changes

    def close(self) -> None:
        if self._failure is None:
            self._stop("the subscription to link changes is closed")
        self._sock.close()

    def _stop(self, why: str) -> None:
        self._failure = why
        self._loop.remove_reader(self._fd)
        self._ready.set()

    def _read(self) -> None:
        """Called by the event loop while the socket has data: read a bounded amount of it."""
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = self._sock.recv(_READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    # Notifications were lost; the socket goes on with the next ones.
                    self._lost()
                    continue
                self._stop(f"reading link changes failed: {exc}")
                return
            self._take(data)
        if self._names or self._indices or self._overrun:
            self._ready.set()

    def _lost(self) -> None:
        self.overruns += 1
        self._overrun = True
        self._names.clear()
        self._indices.clear()

    def _take(self, data: bytes) -> None:
        for index, name in _links_in(data):
            if self._overrun:
                return  # everything is to be looked at anyway
            self._indices.add(index)
            if name is not None:
                self._names.add(name)
            if len(self._names) + len(self._indices) > self._max_pending:
                self._lost()


def _links_in(data: bytes) -> list[tuple[int, str | None]]:
    """(index, name) of each RTM_NEWLINK/RTM_DELLINK message in one datagram."""
    found: list[tuple[int, str | None]] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break  # malformed: nothing after it can be trusted
        body = offset + _NLMSGHDR.size
        if kind in (_RTM_NEWLINK, _RTM_DELLINK) and length >= _NLMSGHDR.size + _IFINFOMSG.size:
            index = _IFINFOMSG.unpack_from(data, body)[2]
            found.append((index, _name(data, body + _IFINFOMSG.size, offset + length)))
        offset += _align(length)
    return found


def _name(data: bytes, start: int, end: int) -> str | None:
    """IFLA_IFNAME among the attributes in data[start:end], or None."""
    at = start
    while at + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, at)
        if length < _RTATTR.size or at + length > end:
            return None
        if kind & _NLA_TYPE_MASK == _IFLA_IFNAME:
            raw = data[at + _RTATTR.size : at + length]
            return raw.split(b"\0", 1)[0].decode(errors="replace")
        at += _align(length)
    return None


def _align(length: int) -> int:
    return (length + 3) & ~3  # NLMSG_ALIGN and RTA_ALIGN: 4 bytes
