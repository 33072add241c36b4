"""The link layer's netlink socket: each request goes out here and its whole answer comes back.

pyroute2 0.9.7 files every arriving message under the sequence number of the request it answers
(``CoreMessageQueue``, one queue per pending request) and puts a message whose number belongs to no
pending request into queue 0, which only a reader of multicast notifications would ever empty. A
daemon that sends requests all year must leave nothing there; two things did:

* The answer to a "get" outlived its request. pyroute2 sends "get" with NLM_F_ACK, so the kernel
  answers with the object *and* an acknowledgement, but pyroute2's reader stops at the object (a
  single, not multipart, answer) and frees the sequence number: the acknowledgement then arrives
  for nobody. Two per ``get_link`` (the link and its parent), about 2 KB of memory each as measured:
  some 25 KB per container started and stopped. The cause is fixed here: a get is sent without
  NLM_F_ACK. The kernel still answers a failed get with its error (netlink_rcv_skb acknowledges
  every error whatever the flags), so nothing is lost.
* A request whose caller is cancelled between sending and reading frees its sequence number too,
  and its answer lands in queue 0. Rare, but never bounded: after every request, queue 0 is emptied.
  That loses nothing: this socket is never bound to a multicast group (``open`` binds nothing; the
  kernel reports groups 0 for it), so queue 0 only ever holds such strays and the error markers
  pyroute2 itself files there, which no request reads either (they carry sequence number 0).

Every other request (add, set, del: an acknowledgement and nothing else; a dump: its parts and
NLMSG_DONE) is read to its last message by pyroute2 already. pyroute2's other per-request state was
checked and stays bounded: each sequence number's queue is deleted when the request ends, the
parser map by sequence number is emptied likewise, and the pool of sequence numbers only keeps the
last 256 freed numbers out of use. Both fixes lean on pyroute2 0.9's internals (``NetlinkRequest``,
``CoreMessageQueue.queues``): tests/kernel/test_netlink_memory.py holds them to their promise.
"""

from __future__ import annotations

from typing import Any, Literal

from pyroute2 import AsyncIPRoute
from pyroute2.iproute.linux import get_arguments_processor
from pyroute2.netlink import NLM_F_REQUEST
from pyroute2.netlink.nlsocket import NetlinkRequest
from pyroute2.netlink.rtnl import RTM_GETLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

Family = Literal["link", "addr", "route"]
Change = Literal["add", "set", "del"]

_STRAYS = 0  # CoreMessageQueue's queue for messages that answer no pending request


class Channel:
    """One ``AsyncIPRoute(ext_ack=True)``: requests in, complete answers out, nothing left over.

    Raises pyroute2's ``NetlinkError`` as it comes: the link layer translates it with the context
    of what it was doing.
    """

    def __init__(self, ipr: Any) -> None:
        self._ipr = ipr

    @classmethod
    async def open(cls, netns: str | None) -> Channel:
        """Open the socket in ``netns`` (None: ours) without entering it; raises ``OSError``.

        pyroute2 opens it in a short-lived forked child that enters the namespace, creates the
        socket and hands its descriptor back (SCM_RIGHTS); a netlink socket keeps the namespace it
        was created in. ``flags=0``: pyroute2's default (O_CREAT) would quietly create a namespace
        that is missing.
        """
        ipr = AsyncIPRoute(ext_ack=True, netns=netns, flags=0)
        try:
            await ipr.setup_endpoint()  # the socket opens lazily: fail here, not on first use
        except BaseException:
            ipr.close()
            raise
        return cls(ipr)

    def close(self) -> None:
        self._ipr.close()

    async def get_link(self, **key: Any) -> Any | None:
        """RTM_GETLINK for one link (``ifname=`` or ``index=``), without an acknowledgement."""
        request = NetlinkRequest(
            self._ipr,
            ifinfmsg(),
            request_filter=get_arguments_processor("link", "get", dict(key)),
            msg_type=RTM_GETLINK,
            msg_flags=NLM_F_REQUEST,  # pyroute2's "get" adds NLM_F_ACK: see the module docstring
        )
        try:
            await request.send()
            answer = [msg async for msg in request.response()]
        finally:
            self._drop_strays()
        return answer[0] if answer else None

    async def dump(self, family: Family, **query: Any) -> list[Any]:
        """Every link, address or route (``query`` as pyroute2 takes it), read to NLMSG_DONE."""
        try:
            return [msg async for msg in await self._method(family)("dump", **query)]
        finally:
            self._drop_strays()

    async def change(self, family: Family, command: Change, **request: Any) -> None:
        """Add, change or delete a link, an address or a route; returns on the kernel's ack."""
        try:
            await self._method(family)(command, **request)
        finally:
            self._drop_strays()

    def queued(self) -> dict[int, int]:
        """How many messages pyroute2 holds, by sequence number (0: answering no request).

        For diagnostics and for the test that holds this module to its promise.
        """
        return {tag: queue.qsize() for tag, queue in self._ipr.msg_queue.queues.items()}

    def _method(self, family: Family) -> Any:
        return {"link": self._ipr.link, "addr": self._ipr.addr, "route": self._ipr.route}[family]

    def _drop_strays(self) -> None:
        strays = self._ipr.msg_queue.queues[_STRAYS]
        while not strays.empty():
            strays.get_nowait()
            strays.task_done()  # keeps CoreMessageQueue.join() from waiting for them
