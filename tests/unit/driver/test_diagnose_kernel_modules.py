"""Whether the kernel can make a link kind, read from module files
(driver/diagnose/kernel_modules.py), on trees laid out as /sys, /proc and /lib/modules look on
real machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from driver.diagnose.kernel_modules import KernelFiles, module_facts

RELEASE = "6.1.0-42-amd64"


def tree(
    root: Path,
    *,
    sys_modules: dict[str, bool] | None = None,  # name -> loaded (has initstate)
    builtin: list[str] | None = None,
    dep: list[str] | None = None,
    proc_modules: bool = True,
    lib_modules: bool = True,
) -> KernelFiles:
    for name, loaded in (sys_modules or {}).items():
        entry = root / "sys" / "module" / name
        entry.mkdir(parents=True)
        if loaded:
            (entry / "initstate").write_text("live\n")
    (root / "proc").mkdir()
    if proc_modules:
        (root / "proc" / "modules").write_text("")
    directory = root / "lib" / "modules" / RELEASE
    if lib_modules:
        directory.mkdir(parents=True)
        if builtin is not None:
            (directory / "modules.builtin").write_text("".join(f"{p}\n" for p in builtin))
        if dep is not None:
            (directory / "modules.dep").write_text("".join(f"{p}:\n" for p in dep))
    return KernelFiles(
        sys=root / "sys", proc=root / "proc", modules=root / "lib" / "modules", release=RELEASE
    )


DEBIAN_DEP = [
    "kernel/net/8021q/8021q.ko.xz",
    "kernel/drivers/net/ipvlan/ipvlan.ko.xz",
    "kernel/drivers/net/macvlan.ko.xz",
]


@pytest.mark.parametrize(
    ("kind", "layout", "availability", "evidence"),
    [
        # Debian's kernel: everything a module, loaded or not.
        (
            "vlan",
            {"sys_modules": {"8021q": True}, "dep": DEBIAN_DEP, "builtin": []},
            "loaded",
            "module/8021q exists",
        ),
        ("vlan", {"dep": DEBIAN_DEP, "builtin": []}, "loadable", "modules.dep lists it"),
        ("ipvlan", {"dep": DEBIAN_DEP, "builtin": []}, "loadable", "modules.dep lists it"),
        # Built in, listed in modules.builtin (or shown in /sys/module without initstate).
        (
            "macvlan",
            {"builtin": ["kernel/drivers/net/macvlan.ko"], "dep": []},
            "builtin",
            "modules.builtin lists it",
        ),
        ("vlan", {"sys_modules": {"8021q": False}}, "builtin", "(built in)"),
        # A kernel that has neither.
        ("ipvlan", {"builtin": ["kernel/drivers/net/macvlan.ko"], "dep": []}, "missing", "neither"),
        # Listed as a module file, but the kernel cannot load modules at all.
        (
            "vlan",
            {"dep": DEBIAN_DEP, "builtin": [], "proc_modules": False},
            "missing",
            "no module support",
        ),
        # The managed plugin's root: no /lib/modules; or a kernel without them installed.
        ("vlan", {"lib_modules": False}, "unknown", "cannot be read"),
        ("vlan", {"builtin": []}, "unknown", "modules.dep is missing"),
        # Compressed module files count as well (xz, zstd, gzip).
        ("vlan", {"dep": ["kernel/net/8021q/8021q.ko.zst"], "builtin": []}, "loadable", "dep"),
    ],
)
def test_module_availability(
    tmp_path: Path, kind: str, layout: dict[str, object], availability: str, evidence: str
) -> None:
    facts = module_facts(kind, files=tree(tmp_path, **layout))  # type: ignore[arg-type]
    assert facts.availability == availability
    assert evidence in facts.evidence


def test_a_link_of_the_kind_settles_what_the_files_cannot(tmp_path: Path) -> None:
    files = tree(tmp_path, lib_modules=False)
    assert module_facts("macvlan", {"veth", "macvlan"}, files).availability == "in use"
    assert module_facts("ipvlan", {"veth", "macvlan"}, files).availability == "unknown"


def test_the_module_behind_each_kind(tmp_path: Path) -> None:
    files = tree(tmp_path)
    assert [module_facts(k, files=files).module for k in ("vlan", "ipvlan", "macvlan")] == [
        "8021q",
        "ipvlan",
        "macvlan",
    ]
