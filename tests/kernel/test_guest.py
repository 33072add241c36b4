"""Boots the virtme-ng guest (Debian's full kernel) once and runs tests/guest in it.

This VM's kernel has no 802.1q, ipvlan or dummy; the guest has them. Each failing guest test is
reported here with its traceback and output, so a red run says which scenario broke.
"""

from __future__ import annotations

import os

import pytest

from tests.harness.guest import require_guest_runner, run_guest_pytest

# Software emulation: boot ~30-40 s, then every guest test at a fraction of host speed.
GUEST_TIMEOUT = float(os.environ.get("PYMACVLAN_GUEST_TIMEOUT", "1500"))


@pytest.mark.guest
def test_guest_suite() -> None:
    require_guest_runner()
    result = run_guest_pytest(["tests/guest"], timeout=GUEST_TIMEOUT)
    failures = result.failures()
    if failures:
        report = "\n\n".join(
            f"=== {f.nodeid} ({f.kind}): {f.message}\n{f.details}" for f in failures
        )
        pytest.fail(f"{len(failures)} guest test(s) failed:\n\n{report}", pytrace=False)
    assert result.returncode == 0, (
        f"the guest run did not finish (exit {result.returncode}); console tail:\n"
        + result.output[-4000:]
    )
    print(
        f"guest: boot {result.boot_seconds or 0:.0f} s, total {result.total_seconds:.0f} s; "
        f"results in {result.result_dir}"
    )
