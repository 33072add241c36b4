"""The parent: it exists, is up and has carrier; it is not Wi-Fi, not a port of a bond, bridge or
team; its MTU holds the network's.

Facts come from one dump of the host's links (`Scene.links`); whether a link is Wi-Fi comes from
sysfs (``LinkInfo.wireless``: None when /sys shows another namespace than the links').
"""

from __future__ import annotations

from driver.diagnose.child_mac import OPER_UP
from plugin.admin.report import NetworkStatus
from plugin.doctor.model import Check
from plugin.doctor.scene import Scene, ids, network_subject

# Masters that take a port's frames for themselves: a macvlan/ipvlan link on such a port gets
# none of them (and the kernel refuses most: one receive hook per device).
_MASTERS = {
    "bond": "bond",
    "team": "team",
    "bridge": "bridge",
    "openvswitch": "Open vSwitch bridge",
}


def parent_checks(scene: Scene, parent: str) -> list[Check]:
    """Exists, up, carrier; Wi-Fi; a port of something: for the parent the user named."""
    networks = scene.networks_on(parent)
    subject = f"parent {parent}"
    on = ids(networks)
    link = scene.link(parent)
    if scene.links_problem is not None:
        return [
            Check(
                name="parent-exists",
                subject=subject,
                verdict="problem",
                found=scene.links_problem,
                networks=on,
            )
        ]
    if link is None:
        return [
            Check(
                name="parent-exists",
                subject=subject,
                verdict="problem",
                found=f"{parent} does not exist on this host"
                + (f"; {_count(networks)} use it" if networks else ""),
                todo="check the name (ip link); a NIC that comes later (USB, hotplug) is used as "
                "soon as it is there, a VLAN link of pymacvlan's is made again with its base",
                networks=on,
            )
        ]
    checks = [
        Check(
            name="parent-exists",
            subject=subject,
            verdict="ok",
            found=f"{parent} exists ({_describe(link.kind)}, MAC {link.mac})",
            networks=on,
        )
    ]
    checks += link_state_checks(scene, parent, subject, on)
    checks.append(wifi_check(scene, parent, networks))
    checks.append(member_check(scene, parent, on))
    return checks


def link_state_checks(scene: Scene, name: str, subject: str, on: list[str]) -> list[Check]:
    link = scene.link(name)
    if link is None:
        return []
    if not link.up:
        return [
            Check(
                name="parent-up",
                subject=subject,
                verdict="problem",
                found=f"{name} is down: nothing its containers send leaves the host",
                todo=f"bring it up: ip link set {name} up (and make it come up at boot)",
                networks=on,
            )
        ]
    checks = [
        Check(name="parent-up", subject=subject, verdict="ok", found=f"{name} is up", networks=on)
    ]
    if link.oper_state in OPER_UP and (link.carrier or link.oper_state == "unknown"):
        checks.append(
            Check(
                name="parent-carrier",
                subject=subject,
                verdict="ok",
                found=f"{name} has carrier (operational state {link.oper_state})",
                networks=on,
            )
        )
    else:
        checks.append(
            Check(
                name="parent-carrier",
                subject=subject,
                verdict="problem",
                found=f"{name} is up but has no carrier (operational state {link.oper_state})",
                todo="plug the cable in, or connect the VM's virtual NIC / the switch port; "
                "for a VLAN link, its base must have carrier",
                networks=on,
            )
        )
    return checks


def wifi_check(scene: Scene, parent: str, networks: list[NetworkStatus]) -> Check:
    link = scene.link(parent)
    subject = f"parent {parent}"
    on = ids(networks)
    if link is None or link.wireless is None:
        return Check(
            name="parent-wifi",
            subject=subject,
            verdict="skipped",
            found="cannot tell whether it is Wi-Fi: /sys/class/net shows another network "
            "namespace than the one the checks run in",
            networks=on,
        )
    if not link.wireless:
        return Check(
            name="parent-wifi",
            subject=subject,
            verdict="ok",
            found=f"{parent} is not a Wi-Fi interface",
            networks=on,
        )
    macvlan = [n for n in networks if n.kind == "macvlan"]
    found = (
        f"{parent} is a Wi-Fi interface: an access point accepts frames only from the MAC of the "
        "station that associated, so frames from macvlan containers' own MACs never arrive"
    )
    todo = (
        "use a wired parent; or ipvlan (-o type=ipvlan), whose containers share the parent's MAC: "
        "l2 mode works for IPv4 with most access points (DHCP needs the client identifier, which "
        "pymacvlan sends), l3 mode needs routes to the containers on the LAN's router"
    )
    if macvlan:
        found += f"; {_count(macvlan)} on it {'is' if len(macvlan) == 1 else 'are'} macvlan"
        return Check(
            name="parent-wifi",
            subject=subject,
            verdict="problem",
            found=found,
            todo=todo,
            networks=on,
        )
    return Check(
        name="parent-wifi",
        subject=subject,
        verdict="warning",
        found=found + "; ipvlan works with caveats",
        todo=todo,
        networks=on,
    )


def member_check(scene: Scene, parent: str, on: list[str]) -> Check:
    link = scene.link(parent)
    subject = f"parent {parent}"
    if link is None or link.master_index is None:
        return Check(
            name="parent-member",
            subject=subject,
            verdict="ok",
            found=f"{parent} is no port of a bond, bridge or team",
            networks=on,
        )
    master = scene.by_index(link.master_index)
    name = master.name if master is not None else f"#{link.master_index}"
    what = _MASTERS.get(master.kind or "") if master is not None else None
    if what is None:
        kind = master.kind if master is not None and master.kind else "another device"
        return Check(
            name="parent-member",
            subject=subject,
            verdict="ok",
            found=f"{parent} is enslaved to {name} ({kind}), which leaves its frames to it",
            networks=on,
        )
    return Check(
        name="parent-member",
        subject=subject,
        verdict="problem",
        found=f"{parent} is a port of {what} {name}: the {what} takes every frame {parent} "
        "receives, so macvlan and ipvlan links on it get none (the kernel refuses to make most)",
        todo=f"use {name} as the parent (-o parent={name}), or take {parent} out of it",
        networks=on,
    )


def vlan_link_checks(scene: Scene, network: NetworkStatus) -> list[Check]:
    """A VLAN network's own link (eth0.10): exists and is up (carrier follows its base)."""
    name = network.link
    subject = f"VLAN link {name}"
    link = scene.link(name)
    on = [network.id]
    if scene.links_problem is not None:
        return []
    if link is None:
        owned = name in network.owned_links
        return [
            Check(
                name="parent-exists",
                subject=subject,
                verdict="problem",
                found=f"VLAN link {name} (VLAN {network.vlan} on {network.parent}) does not exist"
                + (
                    "; pymacvlan made it and makes it again when its base is there" if owned else ""
                ),
                todo=f"check that {network.parent} exists and the kernel has 8021q (see the "
                "kernel-module check)"
                if owned
                else f"create it, or let pymacvlan do it: a "
                f"network whose parent {name} is missing gets it made",
                networks=on,
            )
        ]
    return link_state_checks(scene, name, subject, on)


def mtu_check(scene: Scene, network: NetworkStatus) -> Check:
    subject = network_subject(network)
    link = scene.link(network.link)
    if link is None:
        return Check(
            name="mtu",
            subject=subject,
            verdict="skipped",
            found=f"{network.link} is not there to compare with",
            networks=[network.id],
        )
    if network.mtu is None:
        return Check(
            name="mtu",
            subject=subject,
            verdict="ok",
            found=f"containers get the MTU of {network.link}: {link.mtu}",
            networks=[network.id],
        )
    if network.mtu > link.mtu:
        return Check(
            name="mtu",
            subject=subject,
            verdict="problem",
            found=f"the network's MTU {network.mtu} is larger than the MTU of {network.link} "
            f"({link.mtu}): the kernel refuses to make its containers' links",
            todo=f"raise the MTU of {network.link} to {network.mtu} (ip link set {network.link} "
            f"mtu {network.mtu}, and on the switch), or create the network again with "
            f"-o com.docker.network.driver.mtu={link.mtu}",
            networks=[network.id],
        )
    return Check(
        name="mtu",
        subject=subject,
        verdict="ok",
        found=f"the network's MTU {network.mtu} fits in {network.link}'s {link.mtu}",
        networks=[network.id],
    )


def _describe(kind: str | None) -> str:
    return f"a {kind} link" if kind else "a NIC"


def _count(networks: list[NetworkStatus]) -> str:
    return "1 network" if len(networks) == 1 else f"{len(networks)} networks"
