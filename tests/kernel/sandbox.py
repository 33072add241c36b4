"""Docker's side of Join, done by hand: what dockerd does with the link the plugin hands over.

dockerd moves the link named in Join's ``SrcName`` into the container's namespace, renames it to
``<DstPrefix>N``, puts the endpoint's addresses on it, brings it up and adds the default route to
the gateway. The kernel and lab tests play "container" with a namespace and do the same, so that
the plugin is driven exactly as it is by dockerd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.harness.netns import Netns
from tests.harness.plugind import PluginDaemon


def ok(daemon: PluginDaemon, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    status, answer = daemon.call(method, body)
    assert status == 200, (method, body, status, answer)
    assert not answer.get("Err"), answer
    return dict(answer)


def create_network(
    daemon: PluginDaemon,
    network_id: str,
    pool: str = "192.0.2.0/24",
    gateway: str = "",
    internal: bool = False,
    ipv6: str = "",
    aux: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **opts: str,
) -> dict[str, Any]:
    """`opts` are `-o` options; `labels` the dotted ones (``com.docker.network.driver.mtu``)."""
    v4: dict[str, Any] = {"AddressSpace": "local", "Pool": pool}
    if gateway:
        v4["Gateway"] = gateway
    if aux:
        prefix = pool.split("/")[1]
        v4["AuxAddresses"] = {name: f"{addr}/{prefix}" for name, addr in aux.items()}
    body = {
        "NetworkID": network_id,
        "Options": {
            "com.docker.network.generic": {**opts, **(labels or {})},
            "com.docker.network.internal": internal,
        },
        "IPv4Data": [v4],
        "IPv6Data": [{"AddressSpace": "local", "Pool": ipv6}] if ipv6 else [],
    }
    status, answer = daemon.call("NetworkDriver.CreateNetwork", body)
    return {"_status": status, **answer}


@dataclass
class Container:
    netns: Netns
    endpoint_id: str
    network_id: str
    address: str
    mac: str = ""
    ifname: str = "eth0"


def run_container(
    daemon: PluginDaemon,
    host: Netns,
    container_ns: Netns,
    network_id: str,
    endpoint_id: str,
    address: str,
    address_ipv6: str = "",
) -> Container:
    """CreateEndpoint + Join, then move/rename/address/up the link as dockerd does."""
    iface = {"Address": address}
    if address_ipv6:
        iface["AddressIPv6"] = address_ipv6
    created = ok(
        daemon,
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": network_id, "EndpointID": endpoint_id, "Interface": iface},
    )
    joined = ok(
        daemon,
        "NetworkDriver.Join",
        {"NetworkID": network_id, "EndpointID": endpoint_id, "SandboxKey": "/x", "Options": {}},
    )
    src = joined["InterfaceName"]["SrcName"]
    ifname = joined["InterfaceName"]["DstPrefix"] + "0"
    host.ip("link", "set", src, "netns", container_ns.name)
    container_ns.ip("link", "set", src, "name", ifname)
    container_ns.add_address(ifname, address)
    if address_ipv6:
        container_ns.add_address(ifname, address_ipv6)
    container_ns.set_up(ifname)
    if joined.get("Gateway"):
        container_ns.ip("route", "add", "default", "via", joined["Gateway"])
    for route in joined.get("StaticRoutes") or []:
        container_ns.ip("route", "add", route["Destination"], "dev", ifname)
    mac = (created.get("Interface") or {}).get("MacAddress", "")
    return Container(container_ns, endpoint_id, network_id, address, mac, ifname)


def stop_container(daemon: PluginDaemon, host: Netns, c: Container) -> None:
    """Docker's order on stop: Leave, the link comes back to the host, DeleteEndpoint."""
    ok(daemon, "NetworkDriver.Leave", {"NetworkID": c.network_id, "EndpointID": c.endpoint_id})
    # libnetwork renames the link back to its SrcName and returns it to the host namespace.
    src = "pmv" + c.endpoint_id[:12]
    c.netns.ip("link", "set", c.ifname, "down")
    c.netns.ip("link", "set", c.ifname, "name", src)
    c.netns.ip("link", "set", src, "netns", host.name)
    ok(
        daemon,
        "NetworkDriver.DeleteEndpoint",
        {"NetworkID": c.network_id, "EndpointID": c.endpoint_id},
    )


@dataclass
class DockerNetwork:
    """A network as dockerd holds it after `docker network create`: pool id and IPAM data."""

    network_id: str
    pool_id: str
    subnet: str
    gateway: str = ""
    aux: dict[str, str] | None = None


def docker_network_create(
    daemon: PluginDaemon,
    network_id: str,
    subnet: str,
    *,
    gateway: str = "",
    aux: dict[str, str] | None = None,
    ipam_options: dict[str, str] | None = None,
    **driver_options: str,
) -> DockerNetwork:
    """What dockerd sends for `docker network create -d P --ipam-driver P ...`, in its order:
    RequestPool, the gateway, each aux address, then CreateNetwork with the IPAM data."""
    pool = ok(
        daemon,
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": subnet, "Options": ipam_options or {}},
    )
    prefix = subnet.split("/")[1]
    v4: dict[str, Any] = {"AddressSpace": "local", "Pool": subnet}
    if gateway:
        gw = ok(
            daemon,
            "IpamDriver.RequestAddress",
            {
                "PoolID": pool["PoolID"],
                "Address": gateway,
                "Options": {"RequestAddressType": "com.docker.network.gateway"},
            },
        )
        v4["Gateway"] = gw["Address"]
    for address in (aux or {}).values():
        ok(daemon, "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": address})
    if aux:
        v4["AuxAddresses"] = {k: f"{v}/{prefix}" for k, v in aux.items()}
    ok(
        daemon,
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": network_id,
            "Options": {"com.docker.network.generic": driver_options},
            "IPv4Data": [v4],
        },
    )
    return DockerNetwork(network_id, pool["PoolID"], subnet, gateway, aux)


def docker_run(
    daemon: PluginDaemon,
    host: Netns,
    container_ns: Netns,
    net: DockerNetwork,
    endpoint_id: str,
    address: str = "",
) -> Container:
    """What dockerd does for `docker run --network N [--ip A]`: address, endpoint, join."""
    got = ok(
        daemon,
        "IpamDriver.RequestAddress",
        {"PoolID": net.pool_id, "Address": address, "Options": {}},
    )
    return run_container(daemon, host, container_ns, net.network_id, endpoint_id, got["Address"])
