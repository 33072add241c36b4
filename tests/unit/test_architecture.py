"""The layering DEVELOPERS.md describes, held by the imports themselves.

Three rooms with one door each: `plugin/` (the daemon: HTTP, wire models, settings, wiring) may
import `driver/` and `ipam/`; those two never import each other nor `plugin/`. Each third-party
library with an opinion about the world stays in the one place that needs it: aiohttp serves in
`plugin/` (and is the etcd client's HTTP in `ipam/cluster/etcd.py`), pydantic shapes the wire in
`plugin/`, pyroute2 speaks netlink in the link layer (`driver/netlink/`), sqlite3 lives in the
stores and the one state-file policy. Read with `ast`, so comments and strings do not count and
an import inside a function does.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("plugin", "driver", "ipam")

# Module (path relative to the repository) -> the top-level names it imports.
Imports = dict[str, set[str]]


def _modules() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def _imported(path: Path) -> set[str]:
    """Every module `path` imports, as dotted names (``from a.b import c`` gives ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the project imports absolutely")
    return names


IMPORTS: Imports = {str(p.relative_to(REPO)): _imported(p) for p in _modules()}


def _importers(top_level: str) -> set[str]:
    return {
        module
        for module, names in IMPORTS.items()
        if any(name == top_level or name.startswith(top_level + ".") for name in names)
    }


def _under(module: str, *places: str) -> bool:
    """Whether `module` (a path) is one of `places` (a file, or a folder ending in "/")."""
    return any(module == p or (p.endswith("/") and module.startswith(p)) for p in places)


def test_the_project_has_modules_to_check() -> None:
    assert len(IMPORTS) > 50
    assert "driver/netlink/layer.py" in IMPORTS


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [("driver", ("ipam", "plugin")), ("ipam", ("driver", "plugin"))],
)
def test_driver_and_ipam_never_import_each_other_nor_the_daemon(
    room: str, forbidden: tuple[str, ...]
) -> None:
    offenders = {
        module: sorted(n for n in names if n.split(".")[0] in forbidden)
        for module, names in IMPORTS.items()
        if module.startswith(room + "/")
    }
    assert {m: n for m, n in offenders.items() if n} == {}


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("aiohttp", ("plugin/", "ipam/cluster/etcd.py")),
        ("pydantic", ("plugin/",)),
        ("prometheus_client", ("plugin/",)),
        ("pyroute2", ("driver/netlink/",)),
        (
            "sqlite3",
            (
                "driver/store.py",
                "ipam/sqlite_store.py",
                "ipam/cluster/cache.py",
                "ipam/state_file.py",  # the protocol of the policy the IPAM stores are handed
                "plugin/state_files.py",  # that policy, written once for every state file
            ),
        ),
    ],
)
def test_each_library_stays_in_its_place(library: str, allowed: tuple[str, ...]) -> None:
    assert sorted(m for m in _importers(library) if not _under(m, *allowed)) == []


def test_the_daemon_wires_both_rooms() -> None:
    """plugin/ is the door: it is where driver/ and ipam/ meet (and the only place they do)."""
    assert _importers("driver") <= {m for m in IMPORTS if m.startswith(("plugin/", "driver/"))}
    assert _importers("ipam") <= {m for m in IMPORTS if m.startswith(("plugin/", "ipam/"))}
    assert any(m.startswith("plugin/") for m in _importers("driver"))
    assert any(m.startswith("plugin/") for m in _importers("ipam"))
