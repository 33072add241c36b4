"""Other devices on the LAN that hold the containers' addresses, or addresses of the pools.

* `address-claims`: a device claimed a container's address (ARP, neighbour advertisements) since
  the daemon started: driver/lan/claims.py saw it. Two devices with one address: some of the
  container's traffic goes to the other one. Only a running daemon watches; in-process this is
  skipped.
* `lan-conflicts`: probing before hand-out found devices answering for addresses of a pool; the
  IPAM rests them instead of handing them out, so they are a sign that the pool's range overlaps
  addresses the LAN uses, not of broken traffic.
"""

from __future__ import annotations

import ipaddress
import time

from plugin.admin.report import NetworkStatus
from plugin.doctor.model import Check
from plugin.doctor.scene import Scene, network_subject, who

MAX_LISTED = 5


def claims_check(scene: Scene, network: NetworkStatus) -> Check:
    subject = network_subject(network)
    on = [network.id]
    claims = scene.report.claims
    if claims is None:
        return Check(
            name="address-claims",
            subject=subject,
            verdict="skipped",
            found="only a running daemon watches the LAN for claims of its containers' addresses",
            networks=on,
        )
    if network.dummy:
        return Check(
            name="address-claims",
            subject=subject,
            verdict="skipped",
            found="the network has no parent: no LAN to share addresses with",
            networks=on,
        )
    ours = {
        ipaddress.ip_interface(cidr).ip: endpoint
        for endpoint in scene.report.endpoints
        if endpoint.network_id == network.id
        for cidr in (endpoint.ipv4, endpoint.ipv6)
        if cidr is not None
    }
    found = [c for c in claims if ipaddress.ip_address(c.address) in ours]
    if not found:
        return Check(
            name="address-claims",
            subject=subject,
            verdict="ok",
            found=f"no other device claimed the addresses of its {len(ours)} "
            "container(s) since the daemon started",
            networks=on,
        )
    now = scene.report.generated_at or time.time()
    listed = "; ".join(
        f"{c.address} (container {who(ours[ipaddress.ip_address(c.address)])}, MAC "
        f"{c.expected_mac}) claimed by {c.foreign_mac} on {c.link} {_ago(now - c.seen_at)}"
        for c in found[-MAX_LISTED:]
    )
    more = f" and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
    return Check(
        name="address-claims",
        subject=subject,
        verdict="problem",
        found=f"another device holds a container's address: {listed}{more}",
        todo="find the device by its MAC (the switch's MAC table, the DHCP server's leases) and "
        "give it another address, or keep the address out of the pool "
        "(--ipam-opt exclude=ADDR) and restart the container",
        networks=on,
    )


def lan_conflicts_check(scene: Scene, network: NetworkStatus) -> Check:
    subject = network_subject(network)
    subnets = {s.subnet for s in network.subnets}
    found = [c for c in scene.report.lan_conflicts if c.subnet in subnets]
    if not found:
        return Check(
            name="lan-conflicts",
            subject=subject,
            verdict="ok",
            found="no address of its pools was found in use by another device",
            networks=[network.id],
        )
    listed = ", ".join(f"{c.address} ({c.mac})" for c in found[:MAX_LISTED])
    more = f" and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
    return Check(
        name="lan-conflicts",
        subject=subject,
        verdict="warning",
        found=f"{len(found)} address(es) of its pools answered for by other devices, which the "
        f"IPAM does not hand out: {listed}{more}",
        todo="keep the pool's range clear of the LAN's other devices (--ipam-opt exclude=..., "
        "or a range the DHCP server does not use)",
        networks=[network.id],
    )


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 0):.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"
