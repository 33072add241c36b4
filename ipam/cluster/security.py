"""How pymacvlan and etcd prove themselves to each other: TLS files and an etcd user.

Read once, at start-up, by `ClusterConfig.parse`: a CA bundle that etcd's certificate must chain
to (server name checked), an optional client certificate and key, and an optional etcd user
with its password (from the environment or a file, never from the command line, where `ps`
shows it).

Rules:

* **A file that cannot be used stops the start**, with one line that names the file and the
  setting it came from: missing, unreadable, not PEM, a key that does not belong to its
  certificate, an encrypted key (nobody could type its passphrase into a plugin).
* **The password is never shown**: not in `repr()`, not in `describe()`, not in any message.
  Messages name the user and the password's source only.
* **The client certificate's dates are known** (`certificate_dates`), so that "etcd refused the
  certificate" can say "because it expired on ..." when that is why: etcd's TLS stack answers
  every refused client certificate with the same "bad certificate" alert.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ipam.errors import InvalidRequest

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
# A password file holds one line; anything longer is the wrong file.
_PASSWORD_FILE_LIMIT = 4096


@dataclass(frozen=True)
class EtcdAuth:
    """An etcd user (etcd's v3 auth: user and password in, a token out)."""

    user: str
    password: str = field(repr=False)
    source: str = "PYMACVLAN_ETCD_PASSWORD"  # where the password came from, for messages

    def describe(self) -> str:
        return f'user "{self.user}"'


@dataclass(frozen=True)
class EtcdTls:
    """The TLS side of talking to etcd: who may sign etcd's certificate, and this host's own."""

    ca: Path | None  # None: the system's CAs
    cert: Path | None
    key: Path | None
    context: ssl.SSLContext = field(compare=False, repr=False)
    # (not before, not after) of the client certificate; None without one
    validity: tuple[datetime, datetime] | None = field(default=None, compare=False)

    @classmethod
    def load(cls, ca: str, cert: str, key: str) -> EtcdTls:
        """Read and check the files now; raises `InvalidRequest` naming the file that is wrong."""
        ca_path = Path(ca) if ca else None
        cert_path = Path(cert) if cert else None
        key_path = Path(key) if key else None
        if (cert_path is None) != (key_path is None):
            given, missing = (
                ("--etcd-cert", "--etcd-key") if cert_path else ("--etcd-key", "--etcd-cert")
            )
            raise InvalidRequest(
                f"{given} is set but {missing} is not: a client certificate needs both the "
                "certificate and its private key"
            )
        if ca_path is None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        else:
            # Only this bundle: etcd's certificate is signed by the cluster's own CA, and the
            # system's CAs should not vouch for an etcd member.
            context = _ca_context(ca_path)
        validity = None
        if cert_path is not None and key_path is not None:
            validity = _load_client_pair(context, cert_path, key_path)
        return cls(ca_path, cert_path, key_path, context, validity)

    def describe(self) -> str:
        parts = [f"CA {self.ca}" if self.ca else "the system's CAs"]
        if self.cert is not None:
            parts.append(f"client certificate {self.cert}")
        return "TLS with " + ", ".join(parts)

    def client_cert_problem(self, now: datetime | None = None) -> str | None:
        """Why etcd would refuse this host's certificate by its dates alone; None if in date."""
        if self.validity is None:
            return None
        now = now or datetime.now(UTC)
        not_before, not_after = self.validity
        if now > not_after:
            return f"it expired on {_when(not_after)}"
        if now < not_before:
            return f"it is not valid before {_when(not_before)} (is this host's clock right?)"
        return None


def read_password_file(path: str) -> str:
    """The password in `path`: its first line, without the line end; refuses an empty file."""
    shown = f"the etcd password file {path} (--etcd-password-file)"
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_PASSWORD_FILE_LIMIT + 1)
    except OSError as exc:
        raise InvalidRequest(f"cannot read {shown}: {exc.strerror or exc}") from None
    if len(raw) > _PASSWORD_FILE_LIMIT:
        raise InvalidRequest(f"{shown} is larger than {_PASSWORD_FILE_LIMIT} bytes: not a password")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise InvalidRequest(f"{shown} is not UTF-8 text") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise InvalidRequest(f"{shown} is empty: its first line is the password")
    return lines[0]


def certificate_dates(der: bytes) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of an X.509 certificate in DER.

    Walks only as far as the dates: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE {
    [0] version OPTIONAL, serialNumber INTEGER, signature SEQUENCE, issuer SEQUENCE,
    validity SEQUENCE { notBefore Time, notAfter Time }, ... }, ... } (RFC 5280 §4.1). The
    standard library loads certificates but only shows the dates of CA certificates.
    """
    tag, start, _ = _tlv(der, 0)
    _expect(tag, 0x30)
    tag, pos, _ = _tlv(der, start)  # tbsCertificate
    _expect(tag, 0x30)
    tag, start, end = _tlv(der, pos)
    if tag == 0xA0:  # explicit version
        tag, start, end = _tlv(der, end)
    _expect(tag, 0x02)  # serialNumber
    for _ in range(2):  # signature algorithm, issuer
        tag, start, end = _tlv(der, end)
        _expect(tag, 0x30)
    tag, start, _ = _tlv(der, end)  # validity
    _expect(tag, 0x30)
    tag, first, first_end = _tlv(der, start)
    not_before = _time(tag, der[first:first_end])
    tag, second, second_end = _tlv(der, first_end)
    not_after = _time(tag, der[second:second_end])
    return not_before, not_after


# ------------------------------------------------------ what etcd's refusals mean
#
# Each answers with the rest of a sentence that starts "etcd at ENDPOINT ...", or None when the
# error is not a refusal of this host (the caller reports it as it is).

# X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_NAME_MISMATCH = {62, 64}


def tls_refusal(error: ssl.SSLError, tls: EtcdTls | None) -> str | None:
    """What a failed TLS connection means: etcd's certificate not trusted here, or this host's
    refused there (etcd answers a "bad certificate" alert whatever the reason)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = error.verify_message or _reason(error)
        if error.verify_code in _NAME_MISMATCH:
            return (
                f"has a certificate that is not valid for that address ({detail}): write the "
                "endpoint with a name or address its certificate lists (subjectAltName), or "
                "reissue the certificate with it"
            )
        where = (
            f"the CA bundle {tls.ca} (--etcd-ca)"
            if tls is not None and tls.ca is not None
            else "the system's CAs (no --etcd-ca)"
        )
        return f"has a certificate that {where} does not vouch for ({detail})"
    reason = error.reason or ""
    if "ALERT" in reason:
        alert = _reason(error)
        if tls is None or tls.cert is None:
            return (
                f"requires a client certificate ({alert}): set --etcd-cert and --etcd-key "
                "(PYMACVLAN_ETCD_CERT, PYMACVLAN_ETCD_KEY)"
            )
        problem = tls.client_cert_problem()
        if problem is not None:
            return f"refused this host's client certificate {tls.cert}: {problem} ({alert})"
        return (
            f"refused this host's client certificate {tls.cert} ({alert}): it must be signed "
            "by a CA of etcd's --trusted-ca-file and allow client use (extendedKeyUsage "
            "clientAuth)"
        )
    if "WRONG_VERSION_NUMBER" in reason:
        return f"does not speak TLS ({_reason(error)}): is the endpoint http://?"
    return None


def auth_refusal(message: str, auth: EtcdAuth | None) -> str | None:
    """What an error answer of etcd means when it is about who this host is."""
    if "authentication failed" in message:
        user = f'user "{auth.user}"' if auth is not None else "the user"
        source = f", password from {auth.source}" if auth is not None else ""
        return f"refused {user}: wrong user name or password ({message}{source})"
    if "user name is empty" in message:
        return (
            f"requires a user name and password ({message}): set --etcd-user "
            "(PYMACVLAN_ETCD_USER) and PYMACVLAN_ETCD_PASSWORD or --etcd-password-file"
        )
    if "permission denied" in message:
        who = f'user "{auth.user}"' if auth is not None else "this host"
        return (
            f"does not let {who} read and write pymacvlan's keys ({message}): grant it a role "
            "with readwrite on the key prefix (--etcd-prefix)"
        )
    return None


def gateway_refusal(status: int, body: bytes) -> str | None:
    """etcd's JSON gateway answers some refusals in plain text before any gRPC call."""
    if status == 400 and b"CommonName" in body:
        # etcd refuses identities from certificates on its gateway once authentication is on
        # (they would bypass the token): embed/serve.go.
        return (
            "refuses client certificates that carry a Common Name on its JSON gateway while "
            "authentication is on: issue pymacvlan's client certificate without one (openssl "
            "-subj /) and authenticate with --etcd-user"
        )
    return None


def token_refused(message: str) -> bool:
    """etcd no longer takes the token sent, or wants one: a new token may help (once)."""
    return any(
        text in message
        for text in ("invalid auth token", "user name is empty", "revision of auth store is old")
    )


# ------------------------------------------------------------------ machinery


def _reason(error: ssl.SSLError) -> str:
    """``sslv3 alert bad certificate`` out of ``[SSL: SSLV3_ALERT_BAD_CERTIFICATE] ...``."""
    if error.reason:
        return str(error.reason).lower().replace("_", " ")
    return str(error)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        raise InvalidRequest(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _ca_context(path: Path) -> ssl.SSLContext:
    what = "the etcd CA bundle"
    text = _read(path, what)
    if not _PEM_CERT.search(text):
        raise InvalidRequest(f"{what} {path} (--etcd-ca) holds no PEM certificate")
    try:
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else exc
        raise InvalidRequest(f"{what} {path} (--etcd-ca) cannot be used: {reason}") from None


def _load_client_pair(context: ssl.SSLContext, cert: Path, key: Path) -> tuple[datetime, datetime]:
    what = "the etcd client certificate"
    match = _PEM_CERT.search(_read(cert, what))
    if match is None:
        raise InvalidRequest(f"{what} {cert} (--etcd-cert) holds no PEM certificate")
    try:
        dates = certificate_dates(ssl.PEM_cert_to_DER_cert(match.group(0)))
    except ValueError:
        raise InvalidRequest(f"{what} {cert} (--etcd-cert) is not a valid certificate") from None
    key_text = _read(key, "the etcd client key")
    if "PRIVATE KEY-----" not in key_text:
        raise InvalidRequest(f"the etcd client key {key} (--etcd-key) holds no PEM private key")
    if "ENCRYPTED" in key_text:
        raise InvalidRequest(
            f"the etcd client key {key} (--etcd-key) is encrypted: give it unencrypted, "
            "readable by root only (nobody can type its passphrase into the plugin)"
        )
    try:
        # The password callback never prompts on a terminal: no key here is encrypted.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise InvalidRequest(
                f"the etcd client key {key} (--etcd-key) does not belong to the client "
                f"certificate {cert} (--etcd-cert)"
            ) from None
        raise InvalidRequest(
            f"the etcd client certificate {cert} and key {key} cannot be used: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise InvalidRequest(
            f"cannot read the etcd client certificate {cert} or key {key}: {exc.strerror or exc}"
        ) from None
    return dates


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at `offset`."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or offset + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if offset + length > len(data):
        raise ValueError("truncated DER")
    return tag, offset, offset + length


def _expect(tag: int, wanted: int) -> None:
    if tag != wanted:
        raise ValueError(f"DER tag {tag:#x} where {wanted:#x} belongs")


def _time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii", errors="replace")
    if tag == 0x17:  # UTCTime, YYMMDDHHMMSSZ; RFC 5280: YY >= 50 is 19YY
        parsed = datetime.strptime(text, "%y%m%d%H%M%SZ")
        if parsed.year >= 2050:
            parsed = parsed.replace(year=parsed.year - 100)
    elif tag == 0x18:  # GeneralizedTime, YYYYMMDDHHMMSSZ
        parsed = datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError(f"DER tag {tag:#x} is no time")
    return parsed.replace(tzinfo=UTC)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
