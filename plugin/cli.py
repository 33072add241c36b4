"""``pymacvlan``: the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib.metadata import PackageNotFoundError, version

from plugin import cluster_cli, doctor_cli, gc_cli, logs, settings, status_cli
from plugin.listener import SocketPathError, bind_plugin_socket


def _version() -> str:
    try:
        return version("pymacvlan")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pymacvlan",
        description="Docker network and IPAM plugin: containers on the physical LAN "
        "with macvlan/ipvlan and per-host address plans.",
    )
    parser.add_argument("--version", action="version", version=f"pymacvlan {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the plugin daemon on its unix socket")
    settings.add_arguments(serve)
    status_cli.add_parser(sub)
    doctor_cli.add_parser(sub)
    gc_cli.add_parser(sub)
    cluster_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        try:
            conf = settings.from_arguments(args)
        except settings.SettingsError as exc:
            print(f"pymacvlan: {exc}", file=sys.stderr)
            return 2
        try:
            sock = bind_plugin_socket(conf.socket)
        except (SocketPathError, OSError) as exc:
            print(f"pymacvlan: cannot listen on {conf.socket}: {exc}", file=sys.stderr)
            return 1
        logs.configure(conf.log_level, conf.log_format)
        # Imported only now: aiohttp, pydantic and pyroute2 take about a second to import, and
        # Docker is already dialling the socket bound above.
        from plugin.server import serve

        try:
            asyncio.run(serve(conf, sock))
        except OSError as exc:
            # Only what makes serving impossible ends up here (the netlink socket, the server
            # itself, a state directory locked by another daemon: plugin/state_lock.py): one
            # line, not a traceback. A state directory or file that cannot be used
            # does not stop the daemon; its problem is logged once and answered to every call
            # that needs state (plugin/services.py).
            print(f"pymacvlan: cannot start: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "cluster":
        return cluster_cli.run(args)
    commands = {"status": status_cli.run, "doctor": doctor_cli.run, "gc": gc_cli.run}
    if args.command in commands:
        return commands[args.command](args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
