"""Throwaway certificates for the secured-etcd tests, made with the `openssl` command.

A CA; etcd's server certificate (subjectAltName 127.0.0.1 and localhost); client certificates
with a Common Name, without one (etcd's JSON gateway refuses a Common Name once authentication
is on), and an expired one (`-days -1`: notAfter a day before notBefore, which every TLS stack
reads as expired); a second CA that signed none of them ("the wrong CA"); and a server
certificate that names only `localhost` (to show that the server name is checked). EC P-256
keys: made in milliseconds.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


@dataclass(frozen=True)
class Certs:
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def ca(self) -> Path:
        return self.path("ca.pem")

    @property
    def other_ca(self) -> Path:
        return self.path("other-ca.pem")


def make_certs(openssl: str, directory: Path) -> Certs:
    """Every file under `directory`: NAME.pem (certificate) and NAME.key (its key)."""
    directory.mkdir(parents=True, exist_ok=True)
    serials = iter(range(1000, 2000))

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True, timeout=30)

    def authority(name: str) -> None:
        run("req", "-x509", *_CURVE, "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-days", "2", "-subj", f"/CN=pymacvlan test {name}")  # fmt: skip

    def issue(name: str, subject: str, usage: str, *, days: int = 2, by: str = "ca") -> None:
        run("req", *_CURVE, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        (directory / f"{name}.ext").write_text(usage + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{by}.pem", "-CAkey", f"{by}.key",
            "-set_serial", str(next(serials)), "-days", str(days), "-extfile", f"{name}.ext",
            "-out", f"{name}.pem")  # fmt: skip

    authority("ca")
    authority("other-ca")
    server = "extendedKeyUsage=serverAuth,clientAuth"
    issue("server", "/CN=etcd", f"subjectAltName=IP:127.0.0.1,DNS:localhost\n{server}")
    issue("localhost-only", "/CN=etcd", f"subjectAltName=DNS:localhost\n{server}")
    client = "extendedKeyUsage=clientAuth"
    issue("client", "/CN=pymacvlan", client)
    issue("plain-client", "/", client)  # no Common Name at all
    issue("expired-client", "/", client, days=-1)
    issue("other-ca-client", "/", client, by="other-ca")
    return Certs(directory)
