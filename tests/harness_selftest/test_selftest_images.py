"""The cached debootstrap base image (outside CI opt-in: the first build downloads ~100 MB and
takes ~45 s; under CI the managed-plugin tests build it anyway)."""

from __future__ import annotations

import os

import pytest

from tests.harness import images, prereq
from tests.harness.dockerd import Dockerd


def test_debootstrap_base_image_has_python(dockerd: Dockerd) -> None:
    if not prereq.in_ci() and os.environ.get("PYMACVLAN_SELFTEST_DEBOOTSTRAP") != "1":
        pytest.skip("opt-in: PYMACVLAN_SELFTEST_DEBOOTSTRAP=1 (the plugin build tests use it)")
    name = images.ensure_base_image(dockerd)
    run = dockerd.cli("run", "--rm", "--network", "none", name, "python3", "--version")
    assert run.stdout.startswith("Python 3.11")
