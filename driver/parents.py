"""Parent links: find or create them, check they can carry the network, delete the ones we own.

The rules (moby's drivers, with their rough edges fixed):

* A parent that exists is used as it is and never changed or deleted, even a VLAN link whose name
  we would have chosen: the user made it.
* A missing ``eth0.10`` (or ``-o parent=eth0 -o vlan=10``) is created as an 802.1q link on eth0
  and brought up; a network without a parent gets a dummy link of its own. Both are owned: recorded
  in the store and marked with our alias on the link itself.
* An owned link is deleted when the last network using it goes, and only if its alias still says
  it is ours. An owned link that vanished (a reboot drops VLAN links) is made again when the plugin
  starts and when a container joins.
"""

from __future__ import annotations

from collections.abc import Callable

from driver.config import NetworkConfig, Parent
from driver.context import Context
from driver.errors import DriverError, InvalidOption, LinkError, ParentNotFound
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


async def create_owned(ctx: Context, link: OwnedLink, *, new: bool = False) -> LinkInfo:
    """Create an owned link (down → aliased → up); on any failure nothing is left behind.

    ``new``: for a network being created, whose VLAN base must be up (see check_parent); a link
    made again after a reboot is made whatever the state of its base.
    """
    if link.kind == "dummy":
        await ctx.links.create_dummy(link.name, alias=link.alias)
    elif link.kind == "vlan":
        base = await ctx.links.get_link(link.base)
        if base is None:
            raise ParentNotFound(
                f"parent interface {link.base} (for VLAN {link.vlan_id} link {link.name}) does "
                "not exist on this host"
            )
        if new and not base.up:
            raise InvalidOption(
                f"parent interface {link.base} (for VLAN {link.vlan_id} link {link.name}) is "
                f"down; bring it up first (ip link set {link.base} up)"
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
    log.info("created link", link=link.name, kind=link.kind, base=link.base or None)
    return created


async def prepare_parent(ctx: Context, config: NetworkConfig) -> tuple[LinkInfo, OwnedLink | None]:
    """The parent link for a new network, created if we may; returns it and what we now own.

    The caller stores the network together with the owned link and deletes the link again if
    that fails (``release_new_parent``).
    """
    parent = config.parent
    link = await ctx.links.get_link(parent.name)
    owned = ctx.state.owned.get(parent.name)
    created: OwnedLink | None = None
    if link is None:
        if owned is not None:
            # Ours, vanished (reboot, or deleted by hand): make it again.
            link = await create_owned(ctx, owned)
        elif parent.dummy or parent.is_vlan:
            created = owned_record(parent)
            link = await create_owned(ctx, created, new=True)
        else:
            raise ParentNotFound(f"parent interface {parent.name} does not exist on this host")
    try:
        check_parent(config, link)
        # Our links on the parent belong to the networks compared here (or to none any more).
        others = [
            network_user(other)
            for other in ctx.state.networks.values()
            if other.parent.name == parent.name and other.network_id != config.network_id
        ]
        children = await ctx.links.list_children(link.index)
        others += _link_users(children, skip=lambda child: is_owned(child.alias))
        check_sharing(parent.name, network_user(config), others)
    except DriverError:
        if created is not None:
            await ctx.links.delete_link(created.name)
        raise
    return link, created


def check_parent(config: NetworkConfig, link: LinkInfo, *, joining: bool = False) -> None:
    """What the kernel would accept but the user would regret, or would refuse without a reason.

    A parent that is administratively down is refused when the network is created (someone
    forgot ``ip link set ... up``), but not when a container joins: at boot Docker may restart
    containers before the host's network configuration has brought the parent up, and they must
    start (moby#49593); they get connectivity when the parent comes up.
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
        if joining:
            log.warning(
                "parent is down: the container has no connectivity until it is up",
                parent=name,
                network_id=config.network_id,
            )
        else:
            raise InvalidOption(
                f"parent interface {name} is down; bring it up first (ip link set {name} up)"
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
    """At Join: the parent must be there and up; an owned one that vanished is made again."""
    link = await ctx.links.get_link(config.parent.name)
    if link is None:
        owned = ctx.state.owned.get(config.parent.name)
        if owned is None:
            raise ParentNotFound(
                f"parent interface {config.parent.name} of network {config.network_id[:12]} "
                "no longer exists on this host"
            )
        link = await create_owned(ctx, owned)
    check_parent(config, link, joining=True)
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


async def restore_owned_links(ctx: Context) -> None:
    """At start-up: recreate owned links that networks need; forget or delete the others."""
    for link in list(ctx.state.owned.values()):
        users = ctx.state.networks_on(link.name)
        current = await ctx.links.get_link(link.name)
        if not users:
            # Left over by a crash between deleting a network and forgetting its link.
            if current is not None:
                await delete_owned_if_ours(ctx, link.name)
            await ctx.commit(ctx.store.delete_owned_link, link.name)
            del ctx.state.owned[link.name]
        elif current is None:
            if link.kind in ("macvlan", "ipvlan"):
                continue  # host shims are made again by driver.shim.restore, with their routes
            try:
                await create_owned(ctx, link)
            except DriverError as exc:
                log.error("could not recreate link", link=link.name, error=str(exc))
        elif not is_owned(current.alias):
            log.warning(
                "a link we made was replaced by someone else's; using it, never deleting it",
                link=link.name,
                alias=current.alias,
            )
            await ctx.commit(ctx.store.delete_owned_link, link.name)
            del ctx.state.owned[link.name]
