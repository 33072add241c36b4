"""pymacvlan as users install it: a managed v2 plugin, against the session's real dockerd.

Once per engine the plugin is built from this checkout by ``scripts/build-plugin`` on the
debootstrap'd Debian base (``pymacvlan-base:bookworm``, the same Dockerfile users build on
``python:3.11-slim-bookworm``), then every test drives it with the docker CLI: networks and
containers on a veth "LAN" next to Docker's built-in macvlan, ``docker plugin disable``/``enable``,
``kill -9`` of dockerd, ``docker plugin set``, a start-up with 100,000 stored allocations, and the
registry path (``scripts/push-plugin``, ``docker plugin install``, ``upgrade``, ``rm`` + install).

Each test gets its own state directory (``docker plugin set NAME state.source=...``), never the
host's /var/lib/pymacvlan. Timings go to ``.work/results/managed-plugin-<engine>.json``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin.settings import Settings, parse_switch
from tests.bench.bench_ipam import preload
from tests.e2e.gc_steps import (
    gc_json,
    pool_of,
    pymacvlan,
    request_address_behind_dockers_back,
)
from tests.e2e.managed import (
    DEFAULT_STATE_SOURCE,
    LAN_PEER,
    LAN_PEER_2,
    LAN_SUBNET,
    LAN_SUBNET_2,
    Lan,
    ManagedPlugin,
    PluginBuild,
    build_plugin,
    enable_and_time,
    free_loopback_port,
    make_lan,
    pings,
    plugin_config,
    privileges,
    push_plugin,
    registry,
    run,
    running_addresses,
    settable_defaults,
    wait_running,
)
from tests.harness import images, prereq
from tests.harness.dockerd import Dockerd
from tests.harness.metrics_text import Scrape
from tests.harness.netns import NetnsLab
from tests.harness.paths import WORK, scratch_dir
from tests.harness.unixhttp import request

# managed_plugin: PYMACVLAN_MANAGED_ENGINES picks the engines (tests/conftest.py).
pytestmark = [pytest.mark.e2e, pytest.mark.managed_plugin]

PLUGIN = "pmv-managed"  # not "pymacvlan": never shadow a real installation's name
# What the issue asks: the socket answers within 1 s of the plugin's start. Docker dials it 0.5 s
# after the start, then every 3 s; after 9.5 s it marks the plugin disabled (moby
# plugin/manager_linux.go, pluginPostStart).
STARTUP_TARGET_S = 1.0
PRELOADED = 100_000


def record(dockerd: Dockerd, key: str, value: Any) -> None:
    """Keep a measurement in .work/results/managed-plugin-<engine>.json (and show it with -s)."""
    path = WORK / "results" / f"managed-plugin-{dockerd.engine.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    data["engine"] = dockerd.engine.version()
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"[{dockerd.engine.name}] {key}: {value}")


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def plugin_build(dockerd_session: Dockerd) -> Iterator[PluginBuild]:
    """The plugin built from this checkout, created (disabled) as ``pmv-managed`` in this
    engine; its directory stays for the registry test's ``docker plugin create``."""
    prereq.require_command("debootstrap")
    prereq.require_command("nsenter")
    base = images.ensure_base_image(dockerd_session)
    output = scratch_dir() / f"pmv-plugin-{os.getpid()}-{dockerd_session.engine.name}"
    try:
        build = build_plugin(dockerd_session, PLUGIN, output, base)
        record(dockerd_session, "build_plugin_s", round(build.seconds, 1))
        yield build
    finally:
        if dockerd_session.running:
            ManagedPlugin(f"{PLUGIN}:latest", dockerd_session).remove()
        shutil.rmtree(output, ignore_errors=True)


@pytest.fixture
def managed(dockerd: Dockerd, plugin_build: PluginBuild, tmp_path: Path) -> Iterator[ManagedPlugin]:
    """The plugin, disabled, with a fresh state directory (``managed.state_dir``) and the
    shipped settings; the test enables it. Afterwards its containers and networks are removed
    (while it still answers) and it is disabled again."""
    plugin = ManagedPlugin(f"{PLUGIN}:latest", dockerd)
    plugin.use_state_dir(tmp_path / "state")
    yield plugin
    if not dockerd.running:
        dockerd.start()
    if not plugin.enabled:
        plugin.enable()
    plugin.remove_everything()
    plugin.disable(force=True)
    plugin.reset_settings()


@pytest.fixture
def lan(netns_lab: NetnsLab) -> Lan:
    return make_lan(netns_lab)


def lan_net(p: ManagedPlugin, lan: Lan, name: str, *args: str) -> None:
    """A pymacvlan network on the LAN's 203.0.113.0/24, the LAN peer as its gateway."""
    p.docker(
        "network",
        "create",
        "-d",
        p.name,
        "--ipam-driver",
        p.name,
        "--subnet",
        LAN_SUBNET,
        "--gateway",
        LAN_PEER,
        "-o",
        f"parent={lan.parent}",
        *args,
        name,
    )


def assert_holds_exactly(p: ManagedPlugin, network: str) -> None:
    """Nothing leaked, nothing doubled: the stored allocations are the network's gateway plus
    the addresses of its running containers, and no two running containers share one."""
    running = running_addresses(p, network)
    assert len(set(running.values())) == len(running), f"an address is doubled: {running}"
    assert sorted(p.allocations()) == sorted([LAN_PEER, *running.values()]), running


# --------------------------------------------------------------------- config.json


def test_config_json_matches_the_daemon() -> None:
    """config.json and plugin/settings.py must not drift apart (no dockerd needed)."""
    config = plugin_config()
    assert config["interface"]["types"] == ["docker.networkdriver/1.0", "docker.ipamdriver/1.0"]
    assert config["network"]["type"] == "host"
    assert sorted(config["linux"]["capabilities"]) == ["CAP_NET_ADMIN", "CAP_NET_RAW"]
    assert not config.get("propagatedMount")
    assert not config.get("pidhost")
    # The plugin never calls the Docker API: it is not even given the socket.
    assert not any("docker.sock" in m["source"] for m in config["mounts"])
    env = {e["name"]: e for e in config["env"]}
    fixed = {name: e["value"] for name, e in env.items() if not e.get("settable")}
    assert Path(fixed["PYMACVLAN_SOCKET"]).name == config["interface"]["socket"]
    assert Path(fixed["PYMACVLAN_SOCKET"]).parent == Path("/run/docker/plugins")
    [state] = [m for m in config["mounts"] if m["name"] == "state"]
    assert fixed["PYMACVLAN_STATE_DIR"] == state["destination"]
    # Every settable variable is a setting of the daemon, with the daemon's own default.
    defaults = Settings()
    for name, value in settable_defaults().items():
        field = name.removeprefix("PYMACVLAN_").lower()
        assert hasattr(defaults, field), f"{name} is no setting of plugin/settings.py"
        default = getattr(defaults, field)
        if field == "node_name":
            assert value == "", "empty means: the host name"
        elif isinstance(default, bool):
            assert parse_switch(value) == default, name
        elif isinstance(default, float):
            assert float(value) == default, name
        else:
            assert type(default)(value) == default, name
    wanted = {"LOG_LEVEL", "NODE_NAME", "DEFAULT_POOLS", "QUARANTINE_SECONDS", "ANNOUNCE_COUNT"}
    assert {f"PYMACVLAN_{w}" for w in wanted | {"ETCD_ENDPOINTS"}} <= set(settable_defaults())
    # Securing etcd: the files come in read-only through a mount whose source the user sets;
    # its default exists on every host, or Docker would refuse to enable the plugin.
    secured = {"CA", "CERT", "KEY", "USER", "PASSWORD", "PASSWORD_FILE"}
    assert {f"PYMACVLAN_ETCD_{w}" for w in secured} <= set(settable_defaults())
    [certs] = [m for m in config["mounts"] if m["name"] == "etcd-certs"]
    assert (certs["destination"], certs["settable"]) == ("/etc/pymacvlan/etcd", ["source"])
    assert "ro" in certs["options"]
    assert "rw" not in certs["options"]
    assert Path(certs["source"]).is_dir()


# ----------------------------------------------------------- networks and containers


def test_same_reachability_as_the_builtin_macvlan_on_one_parent(
    managed: ManagedPlugin, busybox_image: str, lan: Lan
) -> None:
    p = managed
    p.enable()
    # Both drivers on the same parent at once, each with its own LAN subnet.
    p.docker(
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        LAN_SUBNET_2,
        "--gateway",
        LAN_PEER_2,
        "-o",
        f"parent={lan.parent}",
        "builtin",
    )
    lan_net(p, lan, "ours")
    results = {}
    for network, peer in (("builtin", LAN_PEER_2), ("ours", LAN_PEER)):
        a, b = f"{network}-a", f"{network}-b"
        run(p, busybox_image, a, network)
        run(p, busybox_image, b, network)
        ip_a, ip_b = p.ip_of(a, network), p.ip_of(b, network)
        results[network] = {
            "a -> b by name": pings(p, a, b),
            "b -> a by address": pings(p, b, ip_a),
            "a -> LAN peer": pings(p, a, peer),
            "LAN peer -> a": lan.peer.ping(ip_a),
            "LAN peer -> b": lan.peer.ping(ip_b),
        }
    assert results["ours"] == results["builtin"], results
    assert all(results["ours"].values()), results
    assert_holds_exactly(p, "ours")


def test_disable_and_enable_keep_networks_and_addresses(
    managed: ManagedPlugin, busybox_image: str, lan: Lan
) -> None:
    p = managed
    p.enable()
    lan_net(p, lan, "keep", "--ip-range", "203.0.113.64/26")
    run(p, busybox_image, "auto", "keep")
    run(p, busybox_image, "fixed", "keep", "--ip", "203.0.113.30")
    before = running_addresses(p, "keep")

    # Docker refuses a plain disable while networks use the plugin; -f is what a user can do.
    refused = p.disable()
    assert refused.returncode != 0
    assert "in use" in refused.stderr, refused.stderr
    assert p.disable(force=True).returncode == 0
    # Containers keep their links while the plugin is away; only new endpoints need it.
    assert pings(p, "auto", "203.0.113.30")
    assert pings(p, "fixed", LAN_PEER)
    p.fails("run", "--rm", "--network", "keep", busybox_image, "true")

    p.enable()
    run(p, busybox_image, "after", "keep")
    now = running_addresses(p, "keep")
    assert {k: now[k] for k in before} == before
    assert now["after"] not in before.values()
    assert pings(p, "after", "auto")
    assert pings(p, "after", LAN_PEER)
    assert_holds_exactly(p, "keep")

    # And everything is given back when the user is done.
    p.docker("rm", "-f", "auto", "fixed", "after")
    p.docker("network", "rm", "keep")
    assert p.allocations() == []


def test_dockerd_kill9_brings_restart_always_containers_back(
    managed: ManagedPlugin, busybox_image: str, lan: Lan
) -> None:
    p = managed
    p.enable()
    lan_net(p, lan, "crash", "--ip-range", "203.0.113.64/26")
    run(p, busybox_image, "pinned", "crash", "--restart=always", "--ip", "203.0.113.40")
    run(p, busybox_image, "auto", "crash", "--restart=always")
    run(p, busybox_image, "plain", "crash")
    auto_before = p.ip_of("auto", "crash")

    p.dockerd.kill9()
    p.dockerd.start()
    wait_running(p, "pinned", "auto")

    assert p.docker("inspect", "-f", "{{.State.Running}}", "plain").strip() == "false"
    assert p.ip_of("pinned", "crash") == "203.0.113.40"
    auto_after = p.ip_of("auto", "crash")
    # Docker < 29 sends no container identity with an automatic address request, so the
    # plugin cannot give "auto" its old address back; what must hold is below.
    record(p.dockerd, "kill9_auto_address_kept", auto_after == auto_before)
    assert len(p.pids()) == 1, "the plugin runs twice after the restart"
    assert_holds_exactly(p, "crash")
    assert pings(p, "auto", "pinned")
    assert lan.peer.ping("203.0.113.40")
    run(p, busybox_image, "fresh", "crash")
    assert pings(p, "fresh", "pinned")
    assert_holds_exactly(p, "crash")


def test_docker_plugin_set_takes_effect(
    managed: ManagedPlugin, busybox_image: str, lan: Lan
) -> None:
    p = managed
    p.enable()
    # By default the node name is the host's name: the plugin runs in its own UTS namespace,
    # which starts as a copy of the host's.
    host = socket.gethostname()
    lan_net(
        p,
        lan,
        "planned",
        "--ipam-opt",
        f"range.{host}=203.0.113.100-203.0.113.109",
        "--ipam-opt",
        "range.managed-node=203.0.113.110-203.0.113.119",
    )
    run(p, busybox_image, "on-host", "planned")
    assert p.ip_of("on-host", "planned") == "203.0.113.100"

    # docker plugin set wants the plugin disabled; with networks in use that is disable -f.
    assert p.disable(force=True).returncode == 0
    p.set("PYMACVLAN_NODE_NAME=managed-node", "PYMACVLAN_DEFAULT_POOLS=198.18.0.0/16:24")
    p.enable()
    run(p, busybox_image, "renamed", "planned")
    assert p.ip_of("renamed", "planned") == "203.0.113.110"
    # A network without --subnet gets the first of the new default pools.
    p.docker(
        "network",
        "create",
        "-d",
        p.name,
        "--ipam-driver",
        p.name,
        "-o",
        f"parent={lan.parent}",
        "pooled",
    )
    ipam = json.loads(p.docker("network", "inspect", "-f", "{{json .IPAM.Config}}", "pooled"))
    assert [c["Subnet"] for c in ipam] == ["198.18.0.0/24"]


# ----------------------------------------------------------------------- start-up


def test_socket_answers_at_once_with_100k_stored_allocations(
    managed: ManagedPlugin, busybox_image: str, lan: Lan
) -> None:
    p = managed
    subnet = "198.18.0.0/15"
    started = time.monotonic()
    assert p.state_dir is not None
    preload(p.state_dir, subnet, PRELOADED)  # the IPAM benchmark's own store fill
    record(p.dockerd, "preload_100k_s", round(time.monotonic() - started, 2))

    timing = enable_and_time(p)
    record(p.dockerd, "startup_100k_socket_s", round(timing.socket_s, 3))
    record(p.dockerd, "startup_100k_socket_from_container_start_s", round(timing.container_s, 3))
    record(p.dockerd, "startup_100k_enable_s", round(timing.enable_s, 3))

    # The first calls that need the state wait for its load, then see all of it.
    started = time.monotonic()
    p.docker(
        "network",
        "create",
        "-d",
        p.name,
        "--ipam-driver",
        p.name,
        "--subnet",
        subnet,
        "-o",
        f"parent={lan.parent}",
        "big",
    )
    run(p, busybox_image, "one", "big")
    record(p.dockerd, "startup_100k_first_run_s", round(time.monotonic() - started, 3))
    address = ipaddress.IPv4Address(p.ip_of("one", "big"))
    first_free = ipaddress.IPv4Address("198.18.0.1") + PRELOADED
    assert address >= first_free, f"{address} is one of the {PRELOADED} stored allocations"

    # Docker's first dial comes 0.5 s after the start; a plugin that misses it makes every
    # `docker plugin enable` and dockerd start wait for the second one, 3 s later.
    assert timing.socket_s < STARTUP_TARGET_S, f"socket answered after {timing.socket_s:.2f} s"


# ----------------------------------------------------------------------- registry


def test_registry_install_upgrade_and_reinstall_keep_the_state(
    dockerd: Dockerd, plugin_build: PluginBuild, busybox_image: str, lan: Lan, tmp_path: Path
) -> None:
    prereq.require_command("docker-registry")
    state_dir = tmp_path / "state"
    with registry(tmp_path / "registry") as reg:
        ref1 = f"{reg.address}/pymacvlan/pymacvlan:1"
        ref2 = f"{reg.address}/pymacvlan/pymacvlan:2"
        plugin_build.stamp("1")
        push_plugin(dockerd, plugin_build, ref1)
        plugin_build.stamp("2")
        push_plugin(dockerd, plugin_build, ref2)
        assert privileges(dockerd, ref1) == {
            "capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW"],
            "mount": sorted([DEFAULT_STATE_SOURCE, "/etc/ssl/certs"]),  # state, etcd-certs
            "network": ["host"],
        }

        p = ManagedPlugin("pmv-registry:latest", dockerd)
        try:
            # What a user types, plus --disable to point the state at the test's directory.
            install = ("plugin", "install", "--grant-all-permissions", "--disable")
            p.docker(*install, "--alias", "pmv-registry", ref1)
            p.use_state_dir(state_dir)
            p.enable()
            assert p.build_stamp() == "1"
            lan_net(p, lan, "reg", "--ip-range", "203.0.113.64/26")
            run(p, busybox_image, "auto", "reg")
            run(p, busybox_image, "fixed", "reg", "--ip", "203.0.113.30")
            held = p.allocations()

            # Upgrade: disable (-f: networks use it), upgrade, set the state mount again
            # (docker plugin upgrade resets a changed mount source; docs/install.md), enable.
            assert p.disable(force=True).returncode == 0
            upgrade = ("plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check")
            p.docker(*upgrade, p.name, ref2)
            record(dockerd, "upgrade_keeps_state_source", p.state_source == str(state_dir))
            p.use_state_dir(state_dir)
            p.enable()
            assert p.build_stamp() == "2"
            assert p.allocations() == held
            run(p, busybox_image, "upgraded", "reg")
            assert pings(p, "upgraded", "fixed")
            assert_holds_exactly(p, "reg")

            # rm + install: the plugin is gone, its networks and the host's state are not.
            p.docker("plugin", "rm", "--force", p.name)
            p.docker(*install, "--alias", "pmv-registry", ref2)
            p.use_state_dir(state_dir)
            p.enable()
            run(p, busybox_image, "reinstalled", "reg")
            addresses = running_addresses(p, "reg")
            assert len(set(addresses.values())) == 4
            assert pings(p, "reinstalled", "auto")
            assert pings(p, "reinstalled", LAN_PEER)
            assert_holds_exactly(p, "reg")
        finally:
            p.remove()


# ----------------------------------------------------------------- stale allocations


@pytest.mark.one_engine
def test_gc_frees_an_allocation_docker_never_knew_and_keeps_a_running_containers(
    managed: ManagedPlugin, busybox_image: str, lan: Lan
) -> None:
    p = managed
    p.enable()
    lan_net(p, lan, "gc", "--ip-range", "203.0.113.64/30")
    run(p, busybox_image, "alive", "gc")
    alive = p.ip_of("alive", "gc")
    lost = request_address_behind_dockers_back(p, pool_of(p, LAN_PEER))
    assert sorted(p.allocations()) == sorted([LAN_PEER, alive, lost])
    p.fails("run", "--rm", "--network", "gc", "--ip", lost, busybox_image, "true")

    answer = gc_json(p, "--plugin", PLUGIN, "--grace", "0")
    assert [(a["action"], a["address"]) for a in answer["allocations"]] == [("freed", lost)]
    assert answer["kept"] == {"gateway": 1, "in_use": 1}
    assert answer["docker"] is True
    assert answer["docker_networks"] == ["gc"]
    assert answer["daemon"] == f"managed plugin {p.name} (enabled)"
    assert sorted(p.allocations()) == sorted([LAN_PEER, alive])
    assert f"address={lost}" in next(
        line for line in p.log().splitlines() if "stale allocation freed" in line
    )
    # The running container keeps its address and its LAN; the freed one is Docker's to give.
    assert p.ip_of("alive", "gc") == alive
    assert pings(p, "alive", LAN_PEER)
    run(p, busybox_image, "again", "gc", "--ip", lost)
    assert pings(p, "again", "alive")
    assert_holds_exactly(p, "gc")


# ----------------------------------------------------------------------------- status


@pytest.mark.one_engine
def test_status_finds_the_plugin_and_reads_its_state_while_it_is_disabled(
    managed: ManagedPlugin, busybox_image: str, lan: Lan
) -> None:
    """`pymacvlan status` as a user runs it on the host: DOCKER_HOST names the engine, no
    socket path; Docker tells which plugin, where its socket and state are, and the names."""
    p = managed
    p.enable()
    lan_net(p, lan, "shown", "--ip-range", "203.0.113.64/30")
    run(p, busybox_image, "web", "shown")
    address = p.ip_of("web", "shown")
    network_id = p.docker("network", "inspect", "-f", "{{.Id}}", "shown").strip()

    def status(*args: str) -> str:
        result = pymacvlan(p, "status", "--plugin", PLUGIN, *args)
        assert (result.returncode, result.stderr) == (0, ""), result
        return result.stdout

    lines = status().splitlines()
    assert lines[:2] == [
        f"pymacvlan answers on {p.socket_path}",
        f"(managed plugin {p.name} (enabled))",
    ]
    row = lines[lines.index("ENDPOINTS") + 2].split()
    assert row[1:4] == ["shown", "web", f"{address}/24"]
    report = json.loads(status("--json"))
    assert (report["source"], report["state_dir"]) == ("daemon", str(p.state_dir))
    assert [(n["id"], n["name"]) for n in report["networks"]] == [(network_id, "shown")]

    # Disabled (-f: the network uses it), the plugin has no socket: its state is read.
    assert p.disable(force=True).returncode == 0
    lines = status().splitlines()
    assert lines[0] == f"the daemon is not running; read from {p.state_dir}"
    row = lines[lines.index("ENDPOINTS") + 2].split()
    assert row[1:4] == ["shown", "web", f"{address}/24"]
    report = json.loads(status("--json", "--network", "shown"))
    assert report["source"] == "state-dir"
    assert [e["container"] for e in report["endpoints"]] == ["web"]
    assert sorted(a["address"] for a in report["allocations"]) == sorted([LAN_PEER, address])


# ----------------------------------------------------------------------------- doctor


@pytest.mark.one_engine
def test_doctor_finds_the_plugin_and_passes_on_the_lab_lan(
    managed: ManagedPlugin, busybox_image: str, lan: Lan
) -> None:
    """`pymacvlan doctor` as a user runs it: DOCKER_HOST names the engine, no socket path; the
    plugin runs the checks with its own privileges in the host's namespace, its short-lived test
    link on the LAN's parent included, and leaves no link behind."""
    p = managed
    p.enable()
    lan_net(p, lan, "checked", "--ip-range", "203.0.113.64/30")
    run(p, busybox_image, "web", "checked")
    links_before = sorted(os.listdir("/sys/class/net"))

    result = pymacvlan(p, "doctor", "--plugin", PLUGIN, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["where"] == "daemon"
    assert report["state_dir"] == "/var/lib/pymacvlan"  # as the plugin sees its state mount
    checks = {(c["name"], c["subject"]): c for c in report["checks"]}
    child = checks[("child-mac", f"gateway {LAN_PEER} from {lan.parent}")]
    assert child["verdict"] == "ok", child
    for name in ("parent-exists", "parent-up", "parent-carrier", "parent-member"):
        assert checks[(name, f"parent {lan.parent}")]["verdict"] == "ok", name
    verdicts = {name: c["verdict"] for (name, _), c in checks.items()}
    assert verdicts["address-claims"] == "ok"  # the running plugin watches the LAN
    assert verdicts["stores-agree"] == "ok"
    assert sorted(os.listdir("/sys/class/net")) == links_before

    text = pymacvlan(p, "doctor", "--plugin", PLUGIN, "--network", "checked")
    assert (text.returncode, text.stderr) == (0, ""), text
    assert text.stdout.startswith(
        f"pymacvlan doctor: checks run by the daemon (managed plugin {p.name} (enabled), "
        f"{p.socket_path})"
    )


# ------------------------------------------------------------------- metrics and health


def test_metrics_and_health_on_the_socket_and_on_the_address_set_for_prometheus(
    managed: ManagedPlugin, busybox_image: str, lan: Lan
) -> None:
    """What an operator scrapes: the plugin's socket (under Docker's plugin runtime directory)
    and the TCP address given with `docker plugin set` (the plugin runs in the host's network
    namespace: a host loopback address). Both count the calls Docker made for one container."""
    p = managed
    port = free_loopback_port()
    p.set(f"PYMACVLAN_METRICS_LISTEN=127.0.0.1:{port}")
    p.enable()
    lan_net(p, lan, "watched", "--ip-range", "203.0.113.64/30")
    run(p, busybox_image, "watched-a", "watched")

    def over_tcp(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    deadline = time.monotonic() + 10  # announcements go out a second after the join
    while True:
        status, text = over_tcp("/metrics")
        assert status == 200
        metrics = Scrape(text)
        if metrics.value("pymacvlan_announcement_frames_total") >= 1:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    calls = "pymacvlan_requests_total"
    assert metrics.value(calls, method="NetworkDriver.CreateNetwork", outcome="ok") == 1
    assert metrics.value(calls, method="NetworkDriver.Join", outcome="ok") == 1
    assert metrics.value("pymacvlan_networks") == 1
    assert metrics.value("pymacvlan_endpoints") == 1
    [pool] = [
        dict(labels)
        for name, labels in metrics.samples
        if name == "pymacvlan_pool_size" and dict(labels)["subnet"] == LAN_SUBNET
    ]
    assert metrics.value("pymacvlan_pool_size", **pool) == 4  # the --ip-range
    assert metrics.value("pymacvlan_pool_addresses", **pool, state="used") == 2  # gateway, a
    assert metrics.value("pymacvlan_pool_addresses", **pool, state="free") == 3
    assert over_tcp("/health") == (200, '{"status": "ready", "reasons": []}')
    assert over_tcp("/NetworkDriver.GetCapabilities")[0] == 404

    # The same numbers on the plugin's socket, as root reads them with curl --unix-socket.
    status, body = request(p.socket_path, "GET", "/pymacvlan/v1/metrics")
    assert status == 200
    on_socket = Scrape(body.decode())
    assert on_socket.value("pymacvlan_endpoints") == 1
    assert on_socket.value("pymacvlan_pool_addresses", **pool, state="used") == 2
    status, body = request(p.socket_path, "GET", "/pymacvlan/v1/health")
    assert (status, json.loads(body)) == (200, {"status": "ready", "reasons": []})
