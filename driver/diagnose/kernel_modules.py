"""Whether the running kernel can make a kind of link: its module is loaded, built in, or can be
loaded, as far as the files say.

Read from the files the module tools read: ``/sys/module/NAME`` (loaded, or built in with
parameters), ``/lib/modules/$(uname -r)/modules.builtin`` and ``modules.dep`` (built in, or a
module file that the kernel loads by itself the first time such a link is made: it asks modprobe
for ``rtnl-link-KIND``). Where those files are not there (a kernel without module support, a
container's root such as the managed plugin's, which has no /lib/modules) the answer may be
"unknown": the link kinds seen on the host settle it when one such link exists.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

# The kernel module behind each link kind the plugin makes.
KIND_MODULES: Final[dict[str, str]] = {"macvlan": "macvlan", "ipvlan": "ipvlan", "vlan": "8021q"}
_SUFFIXES: Final = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")

Availability = Literal["loaded", "builtin", "loadable", "in use", "missing", "unknown"]


@dataclass(frozen=True)
class ModuleFacts:
    kind: str  # the link kind: vlan, ipvlan, macvlan
    module: str  # its module: 8021q, ipvlan, macvlan
    availability: Availability
    evidence: str  # where that was read, or why it cannot be told


@dataclass(frozen=True)
class KernelFiles:
    """Where the module files are; tests point it at a directory of their own."""

    sys: Path = Path("/sys")
    proc: Path = Path("/proc")
    modules: Path = Path("/lib/modules")
    release: str = ""  # "" : the running kernel's (uname -r)

    def modules_dir(self) -> Path:
        return self.modules / (self.release or os.uname().release)


def module_facts(
    kind: str, kinds_in_use: Collection[str] = (), files: KernelFiles | None = None
) -> ModuleFacts:
    """How the kernel stands with link ``kind``; ``kinds_in_use``: the kinds of the links on the
    host now (a link of that kind proves the kernel has it)."""
    files = files or KernelFiles()
    module = KIND_MODULES.get(kind, kind)
    sys_entry = files.sys / "module" / module
    if sys_entry.is_dir():
        # A loaded module has an initstate; a built-in one only appears here with parameters.
        if (sys_entry / "initstate").exists():
            return ModuleFacts(kind, module, "loaded", f"{sys_entry} exists")
        return ModuleFacts(kind, module, "builtin", f"{sys_entry} exists (built in)")
    if kind in kinds_in_use:
        return ModuleFacts(kind, module, "in use", f"a {kind} link exists on this host")
    directory = files.modules_dir()
    builtin = _listed(directory / "modules.builtin", module, dep=False)
    if builtin is True:
        return ModuleFacts(kind, module, "builtin", f"{directory}/modules.builtin lists it")
    module_support = (files.proc / "modules").exists()
    loadable = _listed(directory / "modules.dep", module, dep=True)
    if loadable is True:
        if module_support:
            return ModuleFacts(kind, module, "loadable", f"{directory}/modules.dep lists it")
        return ModuleFacts(
            kind, module, "missing", "the kernel has no module support, and it is not built in"
        )
    if loadable is False and builtin is not None:
        return ModuleFacts(
            kind, module, "missing", f"neither {directory}/modules.builtin nor modules.dep lists it"
        )
    why = f"{directory} cannot be read" if builtin is None else "its modules.dep is missing"
    return ModuleFacts(kind, module, "unknown", f"{sys_entry} does not exist and {why}")


def _listed(path: Path, module: str, *, dep: bool) -> bool | None:
    """Whether the module list ``path`` names ``module``; None when it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    wanted = _normal(module)
    for line in text.splitlines():
        entry = line.split(":", 1)[0] if dep else line
        name = entry.strip().rsplit("/", 1)[-1]
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and _normal(name.removesuffix(suffix)) == wanted:
                return True
    return False


def _normal(name: str) -> str:
    """Module names treat '-' and '_' alike (modprobe does)."""
    return name.replace("-", "_")
