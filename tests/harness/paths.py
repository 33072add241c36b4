"""Where the harness keeps things: the checkout, its virtualenv, its git-ignored work directory."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"
# Caches (engines, images) and results (junit, guest runs); git-ignored.
WORK = Path(os.environ.get("PYMACVLAN_WORK_DIR", REPO / ".work"))


def scratch_dir() -> Path:
    """Base directory for per-run scratch (dockerd roots, state dirs).

    On the host this is ``/tmp``. Inside the virtme-ng guest ``/tmp`` is an overlayfs, on which
    overlay2 cannot stack, so the guest init mounts a tmpfs and names it in the environment.
    """
    return Path(os.environ.get("PYMACVLAN_SCRATCH_DIR", "/tmp"))


def venv_bin(name: str) -> Path:
    """A console script of the project's virtualenv, e.g. ``venv_bin("pymacvlan")``."""
    return VENV / "bin" / name
