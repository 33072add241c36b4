"""Checks that send frames: the child-MAC test against the gateway, the host shim to a container.

They run only where the link layer is the kernel's (`Host.on_kernel`) and on links that are up
with carrier (the parent checks report the rest). The child-MAC test runs under `Host.exclusive`
(the daemon's driver lock): its short-lived macvlan link must not meet a Join on the same parent.
One test per link and gateway, whatever the number of networks that share them.
"""

from __future__ import annotations

import ipaddress

from driver.diagnose.child_mac import OPER_UP, ChildMacFacts, ask_gateway
from driver.errors import DriverError
from driver.lan.probe import probe_address
from plugin.admin.report import EndpointStatus, NetworkStatus
from plugin.doctor.model import Check, Verdict
from plugin.doctor.scene import IPAddress, Scene, ids, network_subject, who

MAX_CONTAINERS_ASKED = 4  # by the shim check: one answer is enough
NO_KERNEL = (
    "this daemon's link layer is not the kernel's (a test's fake link layer): no frame can be sent"
)
GIVE_GATEWAY = "give --gateway ADDR (the LAN's router) to ask it"

Target = tuple[str, IPAddress]  # (link, gateway)


def child_mac_targets(scene: Scene) -> tuple[dict[Target, list[NetworkStatus]], list[Check]]:
    """The (link, gateway) pairs to test and the networks behind each; and a skipped check for
    each network (or the parent asked for) that has no gateway to ask."""
    targets: dict[Target, list[NetworkStatus]] = {}
    skipped: list[Check] = []
    for network in scene.networks():
        if network.dummy:
            continue
        gateways = [ipaddress.ip_address(s.gateway) for s in network.subnets if s.gateway]
        for gateway in gateways:
            targets.setdefault((network.link, gateway), []).append(network)
        if not gateways and scene.inputs.request.gateway is None:
            skipped.append(
                Check(
                    name="child-mac",
                    subject=network_subject(network),
                    verdict="skipped",
                    found="the network names no gateway to ask (docker network create --gateway)",
                    todo=f"pymacvlan doctor --parent {network.link} --gateway ADDR asks the "
                    "LAN's router",
                    networks=[network.id],
                )
            )
    request = scene.inputs.request
    if request.parent is not None:
        if request.gateway is not None:
            targets.setdefault((request.parent, request.gateway), [])
        elif not targets:
            skipped.append(
                Check(
                    name="child-mac",
                    subject=f"parent {request.parent}",
                    verdict="skipped",
                    found="no gateway to ask: no network on this parent names one",
                    todo=GIVE_GATEWAY,
                )
            )
    return targets, skipped


async def child_mac_checks(scene: Scene) -> list[Check]:
    targets, checks = child_mac_targets(scene)
    for (link, gateway), networks in targets.items():
        checks += await child_mac_check(scene, link, gateway, networks)
    return checks


async def child_mac_check(
    scene: Scene, link: str, gateway: IPAddress, networks: list[NetworkStatus]
) -> list[Check]:
    subject = f"gateway {gateway} from {link}"
    on = ids(networks)

    def skipped(found: str, todo: str = "") -> list[Check]:
        return [
            Check(
                name="child-mac",
                subject=subject,
                verdict="skipped",
                found=found,
                todo=todo,
                networks=on,
            )
        ]

    host = scene.host
    if not host.on_kernel:
        return skipped(NO_KERNEL)
    found = scene.link(link)
    if found is None or not found.up or found.oper_state not in OPER_UP:
        return skipped(f"{link} is missing, down or without carrier (see the parent checks)")

    async def work() -> ChildMacFacts:
        return await ask_gateway(host.links, link, gateway, netns=host.netns, timing=host.timing)

    facts = await host.exclusive(work)
    if facts.child.error is None:
        scene.kinds_seen.add("macvlan")  # the test link was made: the kernel has macvlan
    checks = [_judge(facts, subject, networks)]
    if facts.left_behind is not None:
        checks.append(
            Check(
                name="test-link",
                subject=f"link {facts.child.link}",
                verdict="problem",
                found=facts.left_behind,
                todo=f"ip link del {facts.child.link}",
                networks=on,
            )
        )
    return checks


def _judge(facts: ChildMacFacts, subject: str, networks: list[NetworkStatus]) -> Check:
    on = ids(networks)
    child, control = facts.child, facts.control
    asked = "an ARP probe" if facts.gateway.version == 4 else "a neighbour solicitation"
    parent = f"{facts.parent} (MAC {control.mac})"
    if child.answered:
        both = "both ways" if facts.gateway.version == 4 else "out (the answer is multicast)"
        return Check(
            name="child-mac",
            subject=subject,
            verdict="ok",
            found=f"{facts.gateway} answered {asked} from a test macvlan link with a MAC of its "
            f"own ({child.mac}): frames from containers' MACs pass {both}",
            networks=on,
        )
    if control.error is not None and child.error is not None:
        return Check(
            name="child-mac",
            subject=subject,
            verdict="skipped",
            found=f"cannot ask: {child.error}; {control.error}",
            networks=on,
        )
    if control.answered:
        if child.error is not None:
            return Check(
                name="child-mac",
                subject=subject,
                verdict="skipped",
                found=f"{child.error}; {facts.gateway} answers {parent} itself",
                networks=on,
            )
        only_ipvlan = bool(networks) and all(n.kind == "ipvlan" for n in networks)
        found = (
            f"{facts.gateway} answers {parent} but not a macvlan link with another MAC "
            f"({child.mac}): the NIC or the switch drops frames from MACs other than the "
            "parent's"
        )
        if only_ipvlan:
            return Check(
                name="child-mac",
                subject=subject,
                verdict="ok",
                found=found + "; ipvlan containers use the parent's MAC and are not "
                "affected (macvlan networks on this parent would be)",
                networks=on,
            )
        return Check(
            name="child-mac",
            subject=subject,
            verdict="problem",
            found=found + ": macvlan containers cannot reach the LAN",
            todo="let the NIC pass other MACs: promiscuous mode / forged transmits and MAC "
            "address changes (VMware vSphere port group), MAC address spoofing (Hyper-V), port "
            "security off (switch); or use ipvlan (-o type=ipvlan), whose containers share the "
            "parent's MAC (cloud NICs that accept only their own MAC need it)",
            networks=on,
        )
    why = f" ({control.error})" if control.error else ""
    test = f"; the test link: {child.error}" if child.error else ""
    return Check(
        name="child-mac",
        subject=subject,
        verdict="problem",
        found=f"{facts.gateway} answered neither {parent}{why} nor a macvlan link with another "
        f"MAC{test}: it is down, not on this LAN, or not the gateway's address",
        todo=f"check the gateway's address (docker network inspect) and that {facts.parent} is "
        "cabled to that LAN (the right VLAN)",
        networks=on,
    )


# ------------------------------------------------------------------------------ host shim


async def shim_checks(scene: Scene) -> list[Check]:
    checks = []
    for network in scene.networks():
        if network.shim is not None:
            checks.append(await shim_check(scene, network))
    return checks


async def shim_check(scene: Scene, network: NetworkStatus) -> Check:
    assert network.shim is not None
    shim = network.shim.link
    subject = f"host shim {shim}"
    on = [network.id]

    def verdict(v: Verdict, found: str, todo: str = "") -> Check:
        return Check(
            name="host-shim",
            subject=subject,
            verdict=v,
            found=found,
            todo=todo,
            networks=on,
        )

    host = scene.host
    if not host.on_kernel:
        return verdict("skipped", NO_KERNEL)
    link = scene.link(shim)
    if link is None:
        if scene.link(network.link) is None:
            return verdict(
                "skipped", f"its parent {network.link} is missing: the shim comes with it"
            )
        return verdict(
            "problem",
            f"the host shim {shim} of {network_subject(network)} is "
            "missing: the host cannot reach its containers",
            "restart the plugin: it makes the shim again",
        )
    if not link.up or link.oper_state not in OPER_UP:
        return verdict(
            "problem",
            f"{shim} is down or without carrier ({link.oper_state})",
            f"ip link set {shim} up; check its parent {network.link}",
        )
    asked = _containers(scene, network)
    if not asked:
        return verdict("skipped", "no container of this network runs on this host to reach")
    answers: list[str] = []
    for endpoint, address in asked:
        try:
            mac = await probe_address(
                shim,
                address,
                attempts=host.timing.attempts,
                wait=host.timing.wait,
                netns=host.netns,
            )
        except DriverError as exc:
            return verdict("problem", f"cannot ask from {shim}: {exc}")
        name = who(endpoint)
        if mac is not None and (
            network.kind == "ipvlan" or mac == endpoint.mac or not endpoint.mac
        ):
            return verdict("ok", f"the host reaches container {name} ({address}) through {shim}")
        answers.append(
            f"{address} ({name}): "
            + (f"answered by {mac}, not the container's {endpoint.mac}" if mac else "no answer")
        )
    return verdict(
        "problem",
        f"no container answered {shim}: " + "; ".join(answers),
        "check that the containers run and hold their addresses (docker exec ... ip addr); an "
        "answer from another MAC means another device holds the address (see address-claims)",
    )


def _containers(scene: Scene, network: NetworkStatus) -> list[tuple[EndpointStatus, IPAddress]]:
    found: list[tuple[EndpointStatus, IPAddress]] = []
    for endpoint in scene.report.endpoints:
        if endpoint.network_id != network.id:
            continue
        for cidr in (endpoint.ipv4, endpoint.ipv6):
            if cidr is not None:
                found.append((endpoint, ipaddress.ip_interface(cidr).ip))
                break
    return found[:MAX_CONTAINERS_ASKED]
