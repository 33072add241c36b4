#!/usr/bin/env bash
# Fetch a newer Docker engine from Debian sid or trixie into .work/engines/<suite>/root.
#
# Usage: tests/harness/fetch_engine.sh <sid|trixie>
#
# Only the engine packages are unpacked (docker.io, docker-cli when the suite splits it out,
# containerd); the host's bookworm runc stays in use because the newer runc needs a newer glibc.
# apt runs against a private source list, list directory and cache, so the machine's apt state is
# never touched. Idempotent: a finished fetch leaves a .complete stamp and is not repeated.
set -euo pipefail

suite=${1:-}
case $suite in
sid | trixie) ;;
*)
    echo "usage: $0 <sid|trixie>" >&2
    exit 2
    ;;
esac

repo=$(cd "$(dirname "$0")/../.." && pwd)
dest=${PYMACVLAN_ENGINES_DIR:-$repo/.work/engines}/$suite
if [[ -f $dest/.complete ]]; then
    echo "engine $suite already fetched: $(cat "$dest/versions")"
    exit 0
fi

rm -rf "$dest"
mkdir -p "$dest/apt/lists/partial" "$dest/apt/cache/archives/partial" "$dest/debs" "$dest/root"
cat >"$dest/apt/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main
EOF
apt_opts=(
    -o "Dir::Etc::SourceList=$dest/apt/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::Etc::PreferencesParts=/dev/null"
    -o "Dir::State::Lists=$dest/apt/lists"
    -o "Dir::Cache=$dest/apt/cache"
    -o "APT::Sandbox::User=root"
    -o "Debug::NoLocking=1"
)
apt-get "${apt_opts[@]}" -qq update

# trixie and sid ship the CLI as its own package (docker-cli); older suites bundle it in docker.io.
packages=(docker.io containerd)
if apt-cache "${apt_opts[@]}" show docker-cli >/dev/null 2>&1; then
    packages+=(docker-cli)
fi
(cd "$dest/debs" && apt-get "${apt_opts[@]}" -qq download "${packages[@]}")
for deb in "$dest"/debs/*.deb; do
    dpkg -x "$deb" "$dest/root"
done
rm -rf "$dest/apt" "$dest/debs"

# Prove the binaries run on this glibc before declaring the engine usable.
bin="$dest/root/usr/bin"
sbin="$dest/root/usr/sbin"
dockerd_version=$("$sbin/dockerd" --version)
containerd_version=$("$bin/containerd" --version)
"$bin/containerd-shim-runc-v2" -v >/dev/null
echo "$dockerd_version; $containerd_version; runc from the host: $(runc --version | head -n1)" \
    >"$dest/versions"
touch "$dest/.complete"
echo "engine $suite fetched: $(cat "$dest/versions")"
