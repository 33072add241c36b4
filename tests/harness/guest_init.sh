#!/bin/bash
# Runs INSIDE the virtme-ng guest (started by tests/harness/guest.py): load the modules the host
# kernel lacks, give dockerd a tmpfs, run pytest, and leave junit xml + exit code in RESULT_DIR.
#
# Usage: guest_init.sh RESULT_DIR [pytest args...]
#
# The guest sees the host's filesystem read-only (9p); /etc, /var, /tmp are overlays on a tmpfs
# and only --rwdir directories (RESULT_DIR) reach the host. overlay2 cannot stack on the overlayfs
# /tmp, hence the dedicated tmpfs for dockerd data roots and other scratch.
set -u
result_dir=$1
shift
repo=$(cd "$(dirname "$0")/../.." && pwd)
date +%s.%N >"$result_dir/started"
echo "pmv-guest: up, kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"

modprobe -a 8021q ipvlan macvlan dummy veth overlay bridge br_netfilter ||
    echo "pmv-guest: modprobe failed; tests needing those modules will fail"

scratch=/tmp/pmv-scratch
mkdir -p "$scratch"
mount -t tmpfs -o size=1200m,mode=0755 pmv-scratch "$scratch"

export PYMACVLAN_IN_GUEST=1
export PYMACVLAN_SCRATCH_DIR=$scratch
export PYTHONDONTWRITEBYTECODE=1
export HYPOTHESIS_STORAGE_DIRECTORY=$scratch/hypothesis
export PATH=$repo/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

cd "$repo" || exit 1
# Every import costs ~100x its host time here: leave out plugins the guest tests do not use.
"$repo/.venv/bin/python" -m pytest -p no:cacheprovider -p no:hypothesispytest -p no:benchmark \
    --junitxml="$result_dir/junit.xml" "$@"
rc=$?
echo "$rc" >"$result_dir/exit_code"
echo "pmv-guest: pytest exited with $rc"
exit "$rc"
