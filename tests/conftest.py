"""Fixtures and hooks shared by every test layer; the machinery lives in ``tests/harness``.

Fixtures (each cleans up after itself, also when the test fails):

* ``netns_lab``: a `NetnsLab` for throwaway namespaces, veths, switches, processes inside them.
* ``plugin_daemons``: a `PluginDaemons` factory; ``plugin_daemons.spawn("node1", netns=ns)``.
* ``dockerd``: the session's harness dockerd, running, with what the test created removed after
  it; parametrised by engine (``PYMACVLAN_TEST_ENGINE=bookworm,sid``).
* ``dockerd_session``: the same dockerd without the per-test cleanup.
* ``busybox_image``: the name of the busybox test image in that dockerd.

Hooks: tests under ``tests/kernel``, ``tests/guest`` and ``tests/e2e`` get their layer's marker;
``tests/guest`` is only collected inside the guest (``tests/kernel/test_guest.py`` boots it); a
session sweeps what crashed runs left behind and reports (under CI: fails on) its own leftovers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `tests.harness` importable however pytest was started
    sys.path.insert(0, str(REPO))

from tests.harness import dockerd as engines  # noqa: E402
from tests.harness import images, netns, prereq  # noqa: E402
from tests.harness.dockerd import Dockerd  # noqa: E402
from tests.harness.netns import NetnsLab  # noqa: E402
from tests.harness.paths import scratch_dir  # noqa: E402
from tests.harness.plugind import PluginDaemons  # noqa: E402
from tests.harness.proc import HarnessError  # noqa: E402

LAYERS = ("kernel", "guest", "e2e")
GUEST_DIR = REPO / "tests" / "guest"
DOCKERD_LOCK_TIMEOUT = float(os.environ.get("PYMACVLAN_DOCKERD_LOCK_TIMEOUT", "900"))
_leftovers_key = pytest.StashKey[list[str]]()


def _tell(config: pytest.Config, message: str) -> None:
    """Print on the terminal now, past pytest's output capture (waits and sweeps are news)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\nharness: {message}", file=sys.stderr, flush=True)


def _can_manage_network() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say where the run happens and which engines the e2e layer uses."""
    where = "virtme-ng guest" if prereq.in_guest() else "host"
    lines = [
        f"pymacvlan harness: {where}, CI={'true' if prereq.in_ci() else 'false'}, "
        f"engines={','.join(engines.engine_names_from_env())}"
    ]
    if not prereq.in_guest():
        lines.append("tests/guest runs inside the guest, booted by tests/kernel/test_guest.py")
    return lines


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``tests/guest`` needs the guest's kernel: never collect it on the host."""
    if not prereq.in_guest() and collection_path == GUEST_DIR:
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its layer (``-m "not e2e"`` works without decorating every test)."""
    for item in items:
        try:
            layer = item.path.relative_to(REPO / "tests").parts[0]
        except ValueError:
            continue
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))
    _deselect_managed_plugin_engines(config, items)


def _deselect_managed_plugin_engines(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``PYMACVLAN_MANAGED_ENGINES=a,b``: run the managed-plugin tests (marked
    ``managed_plugin``, minutes per engine) only on those of the selected engines; those also
    marked ``one_engine`` only on the first of them."""
    raw = os.environ.get("PYMACVLAN_MANAGED_ENGINES", "")
    wanted = {name.strip() for name in raw.split(",") if name.strip()}
    # ``one_engine``: a command that does the same on every engine runs on the first one.
    first = next((n for n in engines.engine_names_from_env() if not wanted or n in wanted), None)
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("dockerd_session") if callspec else None
        if not item.get_closest_marker("managed_plugin") or not engine:
            keep.append(item)
        elif (wanted and engine not in wanted) or (
            item.get_closest_marker("one_engine") and engine != first
        ):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove namespaces and root links of earlier runs whose pytest process is gone."""
    if _can_manage_network():
        for item in netns.sweep_stale():
            _tell(session.config, f"removed {item} of a test run that is gone")


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Everything this run created must be gone; clean up and complain (fail in CI) if not."""
    if not _can_manage_network():
        return
    left = netns.own_leftovers()
    session.config.stash[_leftovers_key] = left
    if left:
        for item in left:
            kind, name = item.split(" ", 1)
            subprocess.run(["ip", kind, "del", name], capture_output=True)
        if prereq.in_ci():
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report harness leftovers found at the end of the session."""
    left = terminalreporter.config.stash.get(_leftovers_key, [])
    if left:
        terminalreporter.write_sep("=", "harness leftovers (removed now)", red=True)
        for item in left:
            terminalreporter.write_line(item)


@pytest.fixture
def netns_lab(tmp_path: Path) -> Iterator[NetnsLab]:
    """Throwaway namespaces, veths and switches; all deleted after the test."""
    prereq.require_root()
    prereq.require_command("ip")
    prereq.require_command("ping")  # Netns.ping
    lab = NetnsLab(tmp_path)
    yield lab
    lab.cleanup()


@pytest.fixture
def plugin_daemons(tmp_path: Path) -> Iterator[PluginDaemons]:
    """Start our daemon(s), optionally inside a lab namespace; all stopped after the test."""
    daemons = PluginDaemons(tmp_path)
    yield daemons
    daemons.cleanup()


@pytest.fixture(scope="session", params=engines.engine_names_from_env())
def dockerd_session(request: pytest.FixtureRequest) -> Iterator[Dockerd]:
    """The one harness dockerd of this session (per engine), destroyed at the end."""
    prereq.require_root()
    engine = engines.engine(request.param)
    prereq.require(engine.available(), engine.missing_reason())
    args: tuple[str, ...] = engines.DAEMON_ADDRESS_ARGS
    if prereq.in_guest():  # see Engine.stage and GUEST_DAEMON_ARGS: emulation is slow
        engine = engine.stage(scratch_dir() / f"pmv-engine-{engine.name}")
        args += engines.GUEST_DAEMON_ARGS
    prereq.require_command("iptables")
    lock = engines.MachineLock()

    def waiting(holder: str) -> None:
        _tell(request.config, f"waiting for {lock.path} (held by pid {holder}'s test run)")

    prereq.require(
        lock.acquire(DOCKERD_LOCK_TIMEOUT, waiting),
        f"another test run kept the harness dockerd lock {lock.path} for "
        f"{DOCKERD_LOCK_TIMEOUT:.0f} s",
    )
    try:
        with contextlib.ExitStack() as stack:
            try:
                daemon = stack.enter_context(
                    engines.running_dockerd(engine, args, lambda m: _tell(request.config, m))
                )
            except engines.ForeignEngine as exc:
                prereq.require(False, str(exc))
                raise
            yield daemon
    finally:
        lock.release()


@pytest.fixture
def dockerd(dockerd_session: Dockerd) -> Iterator[Dockerd]:
    """The session's dockerd, running; containers and networks the test added are removed
    afterwards (it is restarted first if the test left it stopped or killed)."""
    daemon = dockerd_session
    if not daemon.running:
        daemon.start()
    containers_before = {c["Id"] for c in daemon.api("GET", "/containers/json?all=1")}
    # By name: the predefined networks get new ids on every dockerd start.
    networks_before = {n["Name"] for n in daemon.api("GET", "/networks")}
    yield daemon
    if not daemon.running:
        daemon.start()
    # Best effort: a plugin network (or a container on one) can outlive its plugin process.
    for container in daemon.api("GET", "/containers/json?all=1"):
        if container["Id"] not in containers_before:
            try:
                daemon.api("DELETE", f"/containers/{container['Id']}?force=1")
            except HarnessError as exc:
                print(f"harness: could not remove container {container['Names']}: {exc}")
    for network in daemon.api("GET", "/networks"):
        if network["Name"] not in networks_before:
            try:
                daemon.api("DELETE", f"/networks/{network['Id']}")
            except HarnessError as exc:
                print(f"harness: could not remove network {network['Name']}: {exc}")


@pytest.fixture(scope="session")
def busybox_image(dockerd_session: Dockerd) -> str:
    """Name of the busybox test image, imported once per dockerd data root."""
    prereq.require(
        Path("/bin/busybox").exists(), "needs /bin/busybox (apt-get install busybox-static)"
    )
    return images.ensure_busybox_image(dockerd_session)
