"""STUB: `pymacvlan status`, replaced by the helper that owns this module."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("status", help="(not yet)")


def run(args: argparse.Namespace) -> int:
    return 2
