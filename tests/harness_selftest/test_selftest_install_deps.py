"""tests/install-deps, the one list of what the tests need from the system: what it decides to
install (its --dry-run), the sudo re-run of the project's root-only scripts, and shellcheck over
every shell script of the project."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.harness import prereq

REPO = Path(__file__).resolve().parents[2]
INSTALL_DEPS = REPO / "tests" / "install-deps"
SCRIPTS = [
    ".ci/run",
    "tests/run",
    "tests/install-deps",
    "tests/bench/run",
    "tests/harness/fetch_engine.sh",
    "tests/harness/guest_init.sh",
    "scripts/build-plugin",
    "scripts/push-plugin",
    "scripts/lib/as-root.sh",
]


def fake_bin(tmp_path: Path, *commands: str) -> Path:
    """A directory of do-nothing executables named `commands`: PATH for a machine that has
    exactly those."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in commands:
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def dry_run(path: Path, engines: str = "bookworm", engines_dir: Path | None = None) -> list[str]:
    env = {"PATH": str(path), "PYMACVLAN_TEST_ENGINE": engines}
    if engines_dir is not None:
        env["PYMACVLAN_ENGINES_DIR"] = str(engines_dir)
    result = subprocess.run(
        ["/bin/bash", str(INSTALL_DEPS), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


def would_install(lines: list[str]) -> set[str]:
    for line in lines:
        if line.startswith("would install: "):
            return set(line.removeprefix("would install: ").split())
    assert "nothing to install" in lines, lines
    return set()


def listed() -> dict[str, str]:
    """package -> probe, from --list."""
    out = subprocess.run([str(INSTALL_DEPS), "--list"], capture_output=True, text=True, check=True)
    return {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()}


def test_the_list_names_every_tool_the_tests_call() -> None:
    packages = listed()
    for package, probe in {
        "tcpdump": "cmd:tcpdump",
        "arping": "cmd:arping",
        "iperf3": "cmd:iperf3",
        "iputils-ping": "cmd:ping",
        "etcd-server": "cmd:etcd",
        "etcd-client": "cmd:etcdctl",
        "openssl": "cmd:openssl",
        "dnsmasq-base": "cmd:dnsmasq",
        "docker.io": "cmd:dockerd",
        "busybox-static": "static:/bin/busybox",
        "qemu-system-x86": "cmd:qemu-system-x86_64",
        "linux-image-amd64|linux-image-generic": (
            "file:/boot/vmlinuz-*-amd64|/boot/vmlinuz-*-generic"
        ),
    }.items():
        assert packages.get(package) == probe, package
    assert {p.split(":", 1)[0] for p in packages.values()} <= {"cmd", "file", "static", "python"}


def test_only_missing_commands_are_installed(tmp_path: Path) -> None:
    """The issue's machine: Docker installed, tcpdump not."""
    path = fake_bin(tmp_path, "dockerd", "docker", "containerd", "runc", "iptables", "ip")
    plan = would_install(dry_run(path))
    assert "tcpdump" in plan
    assert {"arping", "iperf3", "iputils-ping", "etcd-server"} <= plan
    assert not {"docker.io", "iptables", "iproute2"} & plan


def test_an_existing_docker_engine_is_never_replaced(tmp_path: Path) -> None:
    """docker-ce (or any engine) installs a dockerd: docker.io would conflict with it."""
    with_engine = would_install(dry_run(fake_bin(tmp_path, "dockerd")))
    assert "docker.io" not in with_engine
    without = would_install(dry_run(fake_bin(tmp_path / "bare")))
    assert "docker.io" in without


def test_a_machine_with_everything_installs_nothing(tmp_path: Path) -> None:
    commands = [p.removeprefix("cmd:") for p in listed().values() if p.startswith("cmd:")]
    path = fake_bin(tmp_path, *commands)
    plan = would_install(dry_run(path))
    # What the fake PATH cannot provide: files on this machine, and python3's ensurepip.
    assert plan <= {
        package
        for package, probe in listed().items()
        if probe.split(":", 1)[0] in ("file", "static", "python")
    }


def test_engines_not_yet_fetched_are_named(tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    (engines / "trixie").mkdir(parents=True)
    (engines / "trixie" / ".complete").touch()
    lines = dry_run(fake_bin(tmp_path), "bookworm,trixie,sid", engines)
    assert "would fetch engines: sid" in lines
    lines = dry_run(fake_bin(tmp_path), "bookworm,trixie", engines)
    assert not [line for line in lines if line.startswith("would fetch")]


def test_root_only_scripts_rerun_themselves_with_sudo() -> None:
    """As a user with sudo: `sudo env <kept settings> SCRIPT ARGS` replaces the process; as a
    user without sudo: the caller is told (status 1)."""
    prereq.require_root()  # to become another user
    prereq.require_command("setpriv")
    # Outside pytest's tmp_path, which only root may enter.
    with tempfile.TemporaryDirectory(prefix="pmv-sudo-") as tmp:
        home = Path(tmp)
        home.chmod(0o755)
        sudo = fake_bin(home / "with-sudo")
        (sudo / "sudo").write_text('#!/bin/sh\necho "sudo $*"\n')
        (sudo / "sudo").chmod(0o755)
        no_sudo = fake_bin(home / "no-sudo")
        script = (
            f"source {REPO}/scripts/lib/as-root.sh; "
            "rerun_as_root /some/script --flag 'two words'; echo returned $?"
        )
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash"]
        env = {"PYMACVLAN_TEST_ENGINE": "sid", "CI": "true", "SECRET": "x", "HOME": "/"}

        with_sudo = subprocess.run(
            [*nobody, "-c", script],
            env={**env, "PATH": f"{sudo}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert with_sudo.stdout.strip() == (
            "sudo env CI=true PYMACVLAN_TEST_ENGINE=sid /some/script --flag two words"
        )
        assert "script needs root: running it with sudo" in with_sudo.stderr

        without = subprocess.run(
            [*nobody, "-c", f"PATH={no_sudo}; {script}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert without.stdout.strip() == "returned 1"


@pytest.mark.parametrize("script", SCRIPTS)
def test_shell_scripts_are_shellcheck_clean(script: str) -> None:
    shellcheck = prereq.require_command("shellcheck")
    result = subprocess.run(
        [shellcheck, "-x", "-f", "gcc", script], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    assert os.access(REPO / script, os.X_OK) or script.endswith(".sh")
