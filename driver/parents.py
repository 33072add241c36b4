"""Parent links: find or create them, check they can carry the network, delete the ones we own.

The rules (moby's drivers, with their rough edges fixed):

* A parent that exists is used as it is and never changed or deleted, even a VLAN link whose name
  we would have chosen: the user made it.
* A missing ``eth0.10`` (or ``-o parent=eth0 -o vlan=10``) is created as an 802.1q link on eth0
  and brought up; a network without a parent gets a dummy link of its own. Both are owned: recorded
  in the store and marked with our alias on the link itself.
* An owned link is deleted when the last network using it goes, and only if its alias still says
  it is ours. An owned link that vanished (a reboot drops VLAN links, someone deleted it, its NIC
  was replugged) is made again: when the plugin starts, when the kernel reports it gone
  (driver/restore.py, driver/linkwatch.py) and when a container joins.
* A parent that is missing or down is no reason to refuse a network: at boot a NIC may come, or
  come up, after the daemon, and Docker never sends CreateNetwork again. The network is recorded;
  a VLAN link of ours on a missing base is made when the base appears. What only the parent itself
  can tell (Ethernet, MTU, the links already on it) is checked when it is there, at Join.
* A container joins a parent that is down (it gets traffic when the parent comes up, as on Docker
  28.0.2 and newer, moby#49593), but not one that is missing: Join says which link is missing.
"""

from __future__ import annotations

from collections.abc import Callable

from driver.config import NetworkConfig, Parent
from driver.context import Context
from driver.errors import DriverError, InvalidOption, LinkError, ParentAbsent
from driver.linkinfo import LinkInfo
from driver.logs import log
from driver.names import ROLE_DUMMY, ROLE_ENDPOINT, ROLE_VLAN, is_owned, owned_alias
from driver.records import OwnedLink
from driver.sharing import ParentUser, check_sharing, link_user, network_user


def owned_record(parent: Parent) -> OwnedLink:
    if parent.dummy:
        return OwnedLink(name=parent.name, kind="dummy", alias=owned_alias(ROLE_DUMMY, parent.name))
    return OwnedLink(
        name=parent.name,
        kind="vlan",
        alias=owned_alias(ROLE_VLAN, parent.name),
        base=parent.vlan_base,
        vlan_id=parent.vlan_id,
    )


async def create_owned(ctx: Context, link: OwnedLink, *, restored: bool = False) -> LinkInfo:
    """Create an owned link (down → aliased → up); on any failure nothing is left behind.

    A VLAN link is made and brought up whatever the state of its base, as Docker's drivers do: on
    a base that is down it carries traffic as soon as the base comes up. ``restored``: the link
    existed and vanished; the one log line says so.
    """
    if link.kind == "dummy":
        await ctx.links.create_dummy(link.name, alias=link.alias)
    elif link.kind == "vlan":
        if await ctx.links.get_link(link.base) is None:
            raise ParentAbsent(
                f"cannot create VLAN {link.vlan_id} link {link.name}: its parent interface "
                f"{link.base} does not exist on this host; containers on this network start once "
                f"it is there (pymacvlan then creates {link.name})"
            )
        await ctx.links.create_vlan(link.name, link.base, link.vlan_id, alias=link.alias)
    else:
        raise LinkError(f"cannot recreate link {link.name} of kind {link.kind}")
    try:
        await ctx.links.set_up(link.name)
        created = await ctx.links.get_link(link.name)
        if created is None:
            raise LinkError(f"link {link.name} vanished right after it was created")
    except DriverError:
        await ctx.links.delete_link(link.name)
        raise
    if restored:
        log.warning(
            "restored a link of ours that had vanished",
            link=link.name,
            kind=link.kind,
            base=link.base or None,
        )
    else:
        log.info("created link", link=link.name, kind=link.kind, base=link.base or None)
    return created


async def prepare_parent(
    ctx: Context, config: NetworkConfig
) -> tuple[LinkInfo | None, OwnedLink | None]:
    """The parent link for a new network, created if we may; returns it (None: not there yet)
    and what we now own.

    The caller stores the network together with the owned link and deletes the link again if
    that fails. A parent that is missing (or a VLAN link of ours whose base is missing) is
    recorded, not refused: only the sharing rule between our own networks can be checked then.
    """
    parent = config.parent
    link = await ctx.links.get_link(parent.name)
    owned = ctx.state.owned.get(parent.name)
    created: OwnedLink | None = None
    if link is None and owned is None and (parent.dummy or parent.is_vlan):
        created = owned_record(parent)
    record = owned or created
    if link is None and record is not None and await _base_present(ctx, record):
        # Ours, vanished (reboot, or deleted by hand), or new: make it.
        link = await create_owned(ctx, record, restored=owned is not None)
    # Our links on the parent belong to the networks compared here (or to none any more).
    others = [
        network_user(other)
        for other in ctx.state.networks.values()
        if other.parent.name == parent.name and other.network_id != config.network_id
    ]
    try:
        if link is not None:
            check_parent(config, link)
            children = await ctx.links.list_children(link.index)
            others += _link_users(children, skip=lambda child: is_owned(child.alias))
        check_sharing(parent.name, network_user(config), others)
    except DriverError:
        if created is not None and link is not None:
            await ctx.links.delete_link(created.name)
        raise
    if link is None:
        missing = parent.vlan_base if record is not None and record.kind == "vlan" else parent.name
        log.warning(
            "the parent does not exist (yet): the network is recorded, and its containers can "
            "start once the parent is there",
            parent=parent.name,
            missing=missing,
            network_id=config.network_id,
        )
    return link, created


async def _base_present(ctx: Context, link: OwnedLink) -> bool:
    """Whether an owned link can be made now: a VLAN link needs its base."""
    return link.kind != "vlan" or await ctx.links.get_link(link.base) is not None


def check_parent(config: NetworkConfig, link: LinkInfo) -> None:
    """What the kernel would accept but the user would regret, or would refuse without a reason.

    A parent that is administratively down is accepted, with a warning: at boot the host's network
    configuration may bring it up after Docker has created networks and restarted containers,
    which must then work (moby#49593); they get traffic when the parent comes up.
    """
    name = link.name
    if link.loopback or not link.ethernet:
        raise InvalidOption(
            f"parent interface {name} is not an Ethernet device; {config.kind} needs one"
        )
    if config.kind == "macvlan" and link.wireless:
        raise InvalidOption(
            f"parent interface {name} is a Wi-Fi interface: access points drop frames from MAC "
            f"addresses that did not associate with them, so macvlan containers would get no "
            f"traffic. Use ipvlan, which shares {name}'s MAC: -o type=ipvlan -o ipvlan_mode=l2"
        )
    if not link.up:
        log.warning(
            "parent is down: containers on it have no traffic until it is up",
            parent=name,
            network_id=config.network_id,
            remedy=f"ip link set {name} up",
        )
    if config.mtu is not None and config.mtu > link.mtu:
        raise InvalidOption(
            f"MTU {config.mtu} is larger than the MTU of parent {name} ({link.mtu}); "
            f"a {config.kind} link cannot exceed its parent's MTU"
        )


async def check_siblings(ctx: Context, config: NetworkConfig, parent: LinkInfo) -> None:
    """Before a link of ``config`` is made on ``parent``: the links on it now must allow it.

    The rule held when the network was created, but links made since by hand or by another program
    may break it, and the kernel would refuse the new link without saying why, or (ipvlan in
    another mode) silently switch them. This network's own endpoint links are not counted: they
    are this network, in its mode. Links inside containers are invisible here; the kernel still
    has the last word over those.
    """
    own = {ep.link_name for ep in ctx.state.endpoints_of(config.network_id)}

    def ours(link: LinkInfo) -> bool:
        return link.name in own and is_owned(link.alias, ROLE_ENDPOINT)

    siblings = _link_users(await ctx.links.list_children(parent.index), skip=ours)
    check_sharing(config.parent.name, network_user(config), siblings)


def _link_users(children: list[LinkInfo], skip: Callable[[LinkInfo], bool]) -> list[ParentUser]:
    users = []
    for child in children:
        user = None if skip(child) else link_user(child, _maker(child))
        if user is not None:
            users.append(user)
    return users


def _maker(link: LinkInfo) -> str:
    return "made by pymacvlan" if is_owned(link.alias) else "not made by pymacvlan"


async def ensure_parent_present(ctx: Context, config: NetworkConfig) -> LinkInfo:
    """At Join: the parent must be there (up or not); an owned one that vanished is made again."""
    name = config.parent.name
    link = await ctx.links.get_link(name)
    if link is None:
        owned = ctx.state.owned.get(name)
        if owned is None:
            raise ParentAbsent(
                f"parent interface {name} of network {config.network_id[:12]} does not exist on "
                f"this host; containers on this network start once it is there (check: ip link "
                f"show {name})"
            )
        link = await create_owned(ctx, owned, restored=True)
    check_parent(config, link)
    return link


async def delete_owned_if_ours(ctx: Context, name: str) -> None:
    """Delete an owned link if it is still ours; anything else is logged and left alone."""
    link = await ctx.links.get_link(name)
    if link is None:
        return
    if not is_owned(link.alias):
        log.warning("not deleting a link that is no longer ours", link=name, alias=link.alias)
        return
    try:
        await ctx.links.delete_link(name)
        log.info("deleted link", link=name)
    except DriverError as exc:
        # On the delete path a failed cleanup is logged and the delete goes on (as moby does).
        log.warning("could not delete link", link=name, error=str(exc))
