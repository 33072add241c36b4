"""Run pytest inside a virtme-ng guest booted with Debian's full kernel (VLAN, ipvlan, dummy).

The host kernel lacks 802.1q, ipvlan and dummy and cannot load modules, so ``tests/guest`` runs in
a qemu guest (software emulation: KVM fails on this CPU, hence ``--disable-kvm``) that sees the
host's filesystem. One boot runs a whole directory: booting costs about 30-40 s.

Host side::

    result = run_guest_pytest(["tests/guest"], timeout=900)
    for failure in result.failures():
        print(failure.nodeid, failure.details)

Guest side: ``guest_init.sh`` loads the modules, mounts a tmpfs scratch for dockerd, sets
``PYMACVLAN_IN_GUEST=1`` and runs pytest. The repository is read-only in the guest unless asked;
only the result directory is writable.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO, VENV, WORK
from .prereq import require

GUEST_INIT = Path(__file__).with_name("guest_init.sh")
KERNEL_ENV = "PYMACVLAN_GUEST_KERNEL"
RESULTS_DIR = WORK / "guest"
KEEP_RESULTS = 5
# Environment the host passes into the guest when set.
PASSED_ENV = ("CI", "PYMACVLAN_TEST_ENGINE")


@dataclass(frozen=True)
class GuestFailure:
    """One failed or erroring test from the guest's junit xml."""

    nodeid: str  # junit style: "tests.guest.test_x::test_name"
    kind: str  # "failure" or "error"
    message: str
    details: str  # traceback plus captured output


@dataclass(frozen=True)
class GuestResult:
    """What a guest run produced. `returncode` is pytest's inside the guest (or the launcher's
    when the guest never got that far, e.g. -9 on timeout)."""

    returncode: int
    junit_path: Path | None
    output: str
    result_dir: Path
    boot_seconds: float | None
    total_seconds: float

    def failures(self) -> list[GuestFailure]:
        """Failed and erroring tests, read from the junit xml."""
        if self.junit_path is None or not self.junit_path.exists():
            return []
        return junit_failures(self.junit_path)


def junit_failures(path: Path) -> list[GuestFailure]:
    """Failures and errors recorded in a pytest junit xml file."""
    found = []
    for case in ET.parse(path).getroot().iter("testcase"):
        for kind in ("failure", "error"):
            for node in case.findall(kind):
                out = "\n".join(
                    f"--- {tag}\n{element.text}"
                    for tag in ("system-out", "system-err")
                    for element in case.findall(tag)
                    if element.text
                )
                found.append(
                    GuestFailure(
                        nodeid=f"{case.get('classname')}::{case.get('name')}",
                        kind=kind,
                        message=node.get("message", ""),
                        details=f"{node.text or ''}\n{out}".strip(),
                    )
                )
    return found


def kernel_image() -> Path | None:
    """The guest kernel: ``$PYMACVLAN_GUEST_KERNEL`` or the newest distribution kernel with every
    module: Debian's ``/boot/vmlinuz-*-amd64``, Ubuntu's ``/boot/vmlinuz-*-generic``."""
    if os.environ.get(KERNEL_ENV):
        return Path(os.environ[KERNEL_ENV])
    images = glob.glob("/boot/vmlinuz-*-amd64") + glob.glob("/boot/vmlinuz-*-generic")

    def version_key(path: str) -> list[int]:
        return [int(part) for part in re.findall(r"\d+", path)]

    return Path(max(images, key=version_key)) if images else None


def missing_prerequisites() -> list[str]:
    """What the guest runner needs and this machine lacks (empty when it can run)."""
    missing = []
    kernel = kernel_image()
    if kernel is None or not kernel.exists():
        missing.append(
            "a distribution kernel in /boot (apt-get install linux-image-amd64, on Ubuntu "
            "linux-image-generic; tests/install-deps does it)"
        )
    else:
        release = kernel.name.removeprefix("vmlinuz-")
        if not Path("/lib/modules", release).is_dir():
            missing.append(f"/lib/modules/{release} (reinstall linux-image-{release})")
    if shutil.which("qemu-system-x86_64") is None:
        missing.append("qemu-system-x86_64 (apt-get install qemu-system-x86)")
    if not (VENV / "bin" / "vng").exists():
        missing.append("vng in .venv (pip install virtme-ng)")
    if not Path("/bin/busybox").exists():
        missing.append("busybox (apt-get install busybox-static)")
    return missing


def require_guest_runner() -> None:
    """Skip (fail under CI) unless this machine can boot the guest."""
    missing = missing_prerequisites()
    require(not missing, "the virtme-ng guest needs " + "; ".join(missing))


def vng_argv(
    script: str,
    *,
    rwdirs: Sequence[Path] = (),
    memory: str = "2G",
    cpus: int = 2,
) -> list[str]:
    """The ``vng`` command line that boots the guest kernel and runs `script` (a shell line)."""
    kernel = kernel_image()
    if kernel is None:
        raise FileNotFoundError("no guest kernel in /boot (tests/install-deps installs one)")
    argv = [
        str(VENV / "bin" / "vng"),
        "--run",
        str(kernel),
        "--disable-kvm",  # KVM fails on this CPU (MSR error)
        # Debian's kernel enables AppArmor, the host has no apparmor_parser, and dockerd refuses
        # to run containers then; the host kernel has no AppArmor either.
        "--append",
        "apparmor=0",
        "--memory",
        memory,
        "--cpus",
        str(cpus),
    ]
    for directory in rwdirs:
        argv += ["--rwdir", str(directory)]
    return [*argv, "--", script]


def _new_result_dir() -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    old = sorted(RESULTS_DIR.glob("run-*"), key=lambda p: p.stat().st_mtime)
    for stale in old[: max(0, len(old) - KEEP_RESULTS + 1)]:
        shutil.rmtree(stale, ignore_errors=True)
    result_dir = RESULTS_DIR / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    result_dir.mkdir()
    return result_dir


def run_guest_pytest(
    paths: Sequence[str] = ("tests/guest",),
    timeout: float = 900.0,
    *,
    pytest_args: Sequence[str] = ("-v", "-ra", "--durations=20"),
    engine: str = "bookworm",
    env: Mapping[str, str] | None = None,
    repo_writable: bool = False,
    memory: str = "2G",
) -> GuestResult:
    """Boot the guest once and run ``pytest <pytest_args> <paths>`` in it.

    `paths` are relative to the repository. `engine` picks the dockerd engine for tests that
    start one inside the guest (they use the same ``dockerd`` fixture as on the host). The
    guest's console output (pytest's report, verbose so that a timeout still shows how far it
    got) is returned and kept in ``result_dir/console.log``; a timeout kills qemu and returns -9.
    """
    result_dir = _new_result_dir()
    guest_env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    guest_env["PYMACVLAN_TEST_ENGINE"] = engine
    guest_env.update(env or {})
    script = " ".join(
        [
            "env",
            *(shlex.quote(f"{key}={value}") for key, value in sorted(guest_env.items())),
            "bash",
            shlex.quote(str(GUEST_INIT)),
            shlex.quote(str(result_dir)),
            *(shlex.quote(arg) for arg in [*pytest_args, *paths]),
        ]
    )
    rwdirs = [result_dir] + ([REPO] if repo_writable else [])
    argv = vng_argv(script, rwdirs=rwdirs, memory=memory)
    host_env = {**os.environ, "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}"}

    started = time.monotonic()
    lines: list[str] = []
    boot: list[float] = []
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=host_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # qemu and vng in one group we can kill on timeout
    )

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            if not boot and line.startswith("pmv-guest: up"):
                boot.append(time.monotonic() - started)
            lines.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        launcher_rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        lines.append(f"\npmv-guest: timed out after {timeout} s, qemu killed\n")
        launcher_rc = -signal.SIGKILL
    reader.join(10)
    total = time.monotonic() - started
    output = "".join(lines)
    (result_dir / "console.log").write_text(output)

    exit_file = result_dir / "exit_code"
    returncode = int(exit_file.read_text()) if exit_file.exists() else (launcher_rc or -1)
    junit = result_dir / "junit.xml"
    return GuestResult(
        returncode=returncode,
        junit_path=junit if junit.exists() else None,
        output=output,
        result_dir=result_dir,
        boot_seconds=boot[0] if boot else None,
        total_seconds=total,
    )
