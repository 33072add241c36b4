"""Images without a registry: the busybox test image and the cached debootstrap base image.

Nothing can be pulled on this machine, so images are made from local files and ``docker import``ed:

* ``busybox-test``: the static busybox with every applet symlinked; containers start in well under
  a second. Built once per dockerd data root (a restart keeps it).
* a Debian base image (``debootstrap --variant=minbase``, python3 included) for the managed plugin's
  rootfs; the debootstrap run (~45 s) is cached as a tarball under ``.work/images``.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .dockerd import Dockerd, unmount_under
from .paths import WORK, scratch_dir
from .proc import HarnessError

BUSYBOX_IMAGE = "busybox-test"
BUSYBOX = Path("/bin/busybox")
# Applets the tests rely on; every other applet of the binary is linked as well.
BUSYBOX_APPLETS: tuple[str, ...] = ("sh", "ip", "ping", "sleep", "wget", "nc", "cat", "hostname")
BUSYBOX_APPLETS += ("ifconfig", "route", "arping", "echo", "ls", "true")
BASE_IMAGE = "pymacvlan-base:bookworm"
BASE_INCLUDE = ("python3", "python3-venv", "ca-certificates")
DEBIAN_MIRROR = "http://deb.debian.org/debian"

_PT_INTERP = 3


def is_static_elf(path: Path) -> bool:
    """True if `path` is a 64-bit ELF without a program interpreter (statically linked)."""
    with path.open("rb") as f:
        header = f.read(64)
        if header[:5] != b"\x7fELF\x02":
            return False
        (phoff,) = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        for index in range(phnum):
            f.seek(phoff + index * phentsize)
            (p_type,) = struct.unpack("<I", f.read(4))
            if p_type == _PT_INTERP:
                return False
    return True


def build_busybox_rootfs(root: Path, busybox: Path = BUSYBOX) -> None:
    """Fill `root` with the static busybox and a symlink per applet."""
    if not is_static_elf(busybox):
        raise HarnessError(f"{busybox} is not statically linked: apt-get install busybox-static")
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    (root / "tmp").mkdir(mode=0o1777, exist_ok=True)
    target = root / "bin" / "busybox"
    target.write_bytes(busybox.read_bytes())
    target.chmod(0o755)
    listed = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True)
    for applet in sorted(set(listed.stdout.split()) | set(BUSYBOX_APPLETS)):
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")


def import_rootfs(dockerd: Dockerd, root: Path, name: str) -> None:
    """``tar -C root -c . | docker import - name``."""
    tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True)
    dockerd.cli("import", "-", name, input=tar.stdout)


def image_exists(dockerd: Dockerd, name: str) -> bool:
    """True if the dockerd has an image called `name`."""
    return dockerd.cli("image", "inspect", name, check=False).returncode == 0


def ensure_busybox_image(dockerd: Dockerd, name: str = BUSYBOX_IMAGE) -> str:
    """Build and import the busybox test image unless this data root has it; returns its name."""
    if not image_exists(dockerd, name):
        with tempfile.TemporaryDirectory(dir=scratch_dir(), prefix="pmv-busybox-") as tmp:
            build_busybox_rootfs(Path(tmp))
            import_rootfs(dockerd, Path(tmp), name)
    return name


def debootstrap_tarball(
    suite: str = "bookworm",
    include: Sequence[str] = BASE_INCLUDE,
    *,
    mirror: str = DEBIAN_MIRROR,
    cache_dir: Path = WORK / "images",
) -> Path:
    """A cached tarball of ``debootstrap --variant=minbase --include=... <suite>``.

    Built once (about 45 s, about 275 MB) and reused by every later run; delete the file to
    rebuild it.
    """
    key = hashlib.sha256(f"{suite} {','.join(sorted(include))} {mirror}".encode()).hexdigest()[:12]
    tarball = cache_dir / f"debootstrap-{suite}-minbase-{key}.tar"
    if tarball.exists():
        return tarball
    cache_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=scratch_dir(), prefix="pmv-debootstrap-"))
    try:
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(include)}",
                suite,
                str(root),
                mirror,
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode != 0:
            raise HarnessError(f"debootstrap failed: {result.stdout[-3000:]}{result.stderr}")
        partial = tarball.with_suffix(f".partial-{os.getpid()}")
        with partial.open("wb") as out:
            subprocess.run(["tar", "-C", str(root), "-c", "."], stdout=out, check=True)
        partial.rename(tarball)
    finally:
        unmount_under(root)  # debootstrap mounts /proc and /sys inside; a failure can leave them
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)
    return tarball


def ensure_base_image(dockerd: Dockerd, name: str = BASE_IMAGE, suite: str = "bookworm") -> str:
    """Import the cached debootstrap tarball as image `name` unless present; returns `name`.

    Use it as the ``FROM`` of the plugin Dockerfile through a build argument.
    """
    if not image_exists(dockerd, name):
        dockerd.cli("import", "-", name, input=debootstrap_tarball(suite), timeout=600)
    return name
