"""A real DHCP server for the DHCP tests: Debian's dnsmasq, run inside a namespace of a lab.

Only documentation addresses, only on an interface of a namespace the test made; DNS off
(``--port=0``); no configuration file but the command line; the lease file in the test's own
directory, read back to see what the server believes. Stopped by its pid (our own child) when
the ``with`` block ends, also when the test fails.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.harness.paths import scratch_dir
from tests.harness.prereq import require_command, slow

RANGE = ("192.0.2.100", "192.0.2.150")
ROUTER = "192.0.2.1"
LEASE_SECONDS = 120  # dnsmasq's minimum


@dataclass(frozen=True)
class ServerLease:
    """One line of dnsmasq's lease file: ``expiry mac address hostname client-id``."""

    expiry: int
    mac: str
    address: str
    hostname: str | None  # "*" in the file: none given
    client_id: str | None  # colon-separated hex, as dnsmasq writes it


@dataclass
class Dnsmasq:
    process: subprocess.Popen[bytes]
    directory: Path
    kept_leases: Path | None = None  # the caller's lease file, which outlives this server

    @property
    def lease_file(self) -> Path:
        return self.kept_leases or self.directory / "leases"

    @property
    def log(self) -> str:
        return (self.directory / "log").read_text(errors="replace")

    def leases(self) -> list[ServerLease]:
        if not self.lease_file.exists():
            return []
        out = []
        for line in self.lease_file.read_text().splitlines():
            expiry, mac, address, hostname, client_id = line.split()[:5]
            out.append(
                ServerLease(
                    int(expiry),
                    mac,
                    address,
                    None if hostname == "*" else hostname,
                    None if client_id == "*" else client_id,
                )
            )
        return out

    def lease_of(self, mac: str) -> ServerLease | None:
        return next((lease for lease in self.leases() if lease.mac == mac), None)

    def wait_for(self, what: str, holds: Callable[[], bool], timeout: float = 3.0) -> None:
        """Wait until ``holds()`` is true (dnsmasq writes its lease file right after it answers,
        but after the answer is on the wire)."""
        deadline = time.monotonic() + slow(timeout)
        while not holds():
            if time.monotonic() > deadline:
                raise AssertionError(f"dnsmasq: {what} did not happen; lease file: {self.leases()}")
            time.sleep(0.05)


@contextlib.contextmanager
def dnsmasq(
    netns: str,
    interface: str,
    *,
    dhcp_range: tuple[str, str] = RANGE,
    router: str = ROUTER,
    ping: bool = False,
    extra: Sequence[str] = (),
    lease_file: Path | None = None,
) -> Iterator[Dnsmasq]:
    """dnsmasq serving DHCP on ``interface`` of ``netns`` (which has an address in the range's
    /24), ready to answer when the block starts. ``ping``: dnsmasq's own default, an ICMP echo
    to a new address before offering it, which holds the OFFER back about 3 s; off unless
    asked, to keep the tests fast. ``lease_file``: the caller's, kept when the server stops, so
    that a server started again on it knows its leases (a restart, not a new server)."""
    binary = require_command("dnsmasq")
    directory = Path(tempfile.mkdtemp(prefix="pmv-dnsmasq-", dir=scratch_dir()))
    argv = [
        "ip",
        "netns",
        "exec",
        netns,
        binary,
        "--no-daemon",
        "--conf-file=/dev/null",
        f"--interface={interface}",
        "--bind-interfaces",
        f"--dhcp-range={dhcp_range[0]},{dhcp_range[1]},255.255.255.0,{LEASE_SECONDS}",
        f"--dhcp-leasefile={lease_file or directory / 'leases'}",
        f"--dhcp-option=option:router,{router}",
        f"--pid-file={directory / 'pid'}",
        "--port=0",
        "--log-facility=-",
        "--log-dhcp",
        *(() if ping else ("--no-ping",)),
        *extra,
    ]
    with (directory / "log").open("wb") as log:
        # ip netns exec execs dnsmasq: this child's pid is dnsmasq's.
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    server = Dnsmasq(process, directory, lease_file)
    try:
        deadline = time.monotonic() + slow(5.0)
        while "DHCP, sockets bound" not in server.log:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dnsmasq did not start: {server.log[-2000:]}")
            time.sleep(0.05)
        yield server
    except BaseException:
        print(f"dnsmasq's log:\n{server.log[-4000:]}")  # shown with the failed test's output
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=slow(5.0))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)
