# shellcheck shell=bash
# Sourced by the project's scripts that need root (scripts/build-plugin, tests/run,
# tests/install-deps); not run on its own.
#
# rerun_as_root SCRIPT [ARGS...]
#   As root: returns at once. Otherwise, when sudo exists, replaces this process with
#   `sudo SCRIPT ARGS...`, keeping the settings sudo would drop: PYMACVLAN_*, CI, DOCKER,
#   DOCKER_HOST, PYTHON, TMPDIR, DEBIAN_FRONTEND, pip's PIP_*, proxies and CA bundles.
#   Without sudo it returns 1: the caller explains (or carries on unprivileged).
#   Machines here are often root-only with no sudo at all; users on a workstation have sudo.
rerun_as_root() {
    ((EUID == 0)) && return 0
    command -v sudo >/dev/null 2>&1 || return 1
    local keep=() name
    for name in $(compgen -e); do
        case $name in
        PYMACVLAN_* | CI | DOCKER | DOCKER_HOST | PYTHON | TMPDIR | DEBIAN_FRONTEND | PIP_* | \
            http_proxy | https_proxy | no_proxy | HTTP_PROXY | HTTPS_PROXY | NO_PROXY | \
            SSL_CERT_FILE | SSL_CERT_DIR | REQUESTS_CA_BUNDLE | CURL_CA_BUNDLE)
            keep+=("$name=${!name}")
            ;;
        esac
    done
    echo "==> ${1##*/} needs root: running it with sudo" >&2
    exec sudo env "${keep[@]}" "$@"
}
