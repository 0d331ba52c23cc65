"""Why a broker refused us, in one line: no token, a wrong token, a role without permission, a
certificate we do not trust, nothing listening at its URL. The one home of these messages, for
the admin API and the client.
"""

from __future__ import annotations

import socket
import ssl

import httpx

from pulsarjobs.errors import AccessDenied, BrokerUnavailable, NotFound, NotPermitted


def role_of(token: str) -> str | None:
    """The role a token claims (its `sub`), read without checking the signature."""
    import jwt  # only once a broker refused a token: every process imports this module

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return str(subject) if subject else None


def refused(url: str) -> BrokerUnavailable:
    return BrokerUnavailable(f"connection refused at {url} — is the broker running?")


def missing_namespace(url: str, namespace: str) -> NotFound:
    name = namespace.partition("/")[2]
    return NotFound(
        f"The namespace {namespace} does not exist at {url}: create it with "
        f"`PULSARJOBS_NAMESPACE={name} pulsarjobs namespace create`, or set PULSARJOBS_NAMESPACE "
        "to one that exists."
    )


def no_token(url: str) -> AccessDenied:
    return AccessDenied(
        f"The broker at {url} requires a token: set PULSARJOBS_TOKEN (or --token) to a JWT "
        "for your role."
    )


def wrong_token(url: str) -> AccessDenied:
    return AccessDenied(
        f"The broker at {url} rejected the token (not signed with its secret, expired, or "
        "malformed): check PULSARJOBS_TOKEN."
    )


def not_permitted(url: str, token: str | None, doing: str) -> NotPermitted:
    role = role_of(token) if token else None
    who = f"role {role!r}" if role else "this token's role"
    return NotPermitted(
        f"The broker at {url} does not let {who} do this ({doing}): grant it with "
        f"`pulsarjobs namespace grant {role or 'ROLE'} --produce --consume` (see docs/security.md)."
    )


def untrusted(url: str, detail: str) -> AccessDenied:
    return AccessDenied(
        f"The TLS certificate of {url} is not trusted ({detail}): set PULSARJOBS_TLS_TRUST_FILE "
        "to the CA file that signed it."
    )


def admin_refusal(status: int, url: str, token: str | None, doing: str) -> AccessDenied | None:
    """The error for an admin API answer of 401 or 403; None for any other status."""
    if status == 401:
        return wrong_token(url) if token else no_token(url)
    if status == 403:
        return not_permitted(url, token, doing)
    return None


def transport_failure(url: str, exc: httpx.TransportError) -> AccessDenied | None:
    """The error for a TLS handshake we refused; None for any other failure to connect."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    return untrusted(url, cause.verify_message or str(cause))


def nothing_listens(url: str, timeout: float = 2.0) -> BrokerUnavailable | None:
    """The error to raise when a connection to the service URL is refused: the C++ client only
    reports a timeout, after 10 s. None when it answers, or not in time (it may be slow), or
    for an HTTP lookup URL, whose default port is not the binary protocol's."""
    if not url.startswith(("pulsar://", "pulsar+ssl://")):
        return None
    failure = connect_failure(url, timeout)
    return refused(url) if isinstance(failure, ConnectionRefusedError) else None


def web_port_instead(url: str, timeout: float = 2.0) -> BrokerUnavailable | None:
    """After the client found no broker at a pulsar:// URL that takes connections: the error
    to raise when an HTTP server answers there (the admin URL's port, say), else None. Never
    asked before a failure: a broker would log the request as a bad frame."""
    scheme, _, hosts = url.partition("://")
    host, _, port = hosts.strip("/").split(",")[0].rpartition(":")
    if scheme != "pulsar" or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as peer:
            peer.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
            answer = peer.recv(5)
    except OSError:
        return None
    if answer != b"HTTP/":
        return None
    return BrokerUnavailable(
        f"A web server answers at {url}, not a Pulsar broker: the service URL names the "
        "broker's binary port (6650 unless changed), e.g. pulsar://127.0.0.1:6650; the web "
        "port (8080) is the admin URL's."
    )


def connect_failure(service_url: str, timeout: float) -> Exception | None:
    """Why no address of the service URL takes a TCP connection; None once one does."""
    scheme, _, hosts = service_url.partition("://")
    default_port = 6651 if scheme == "pulsar+ssl" else 6650
    failure: Exception | None = None
    for address in hosts.strip("/").split(","):
        host, colon, port = address.rpartition(":")
        if not colon or host.endswith(":"):  # no port, or a bare IPv6 address
            host, port = address, ""
        try:
            target = (host.strip("[]"), int(port) if port else default_port)
            socket.create_connection(target, timeout=timeout).close()
            return None
        except (OSError, ValueError) as exc:  # refused, unknown host, or a port that is no number
            failure = exc
    return failure
