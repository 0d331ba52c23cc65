"""Why a broker refused us, in one line: no token, a wrong token, a role without permission, a
certificate we do not trust. The one home of these messages, for the admin API and the client.
"""

from __future__ import annotations

import ssl

import httpx

from pulsarjobs.errors import AccessDenied


def role_of(token: str) -> str | None:
    """The role a token claims (its `sub`), read without checking the signature."""
    import jwt  # only once a broker refused a token: every process imports this module

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return str(subject) if subject else None


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


def not_permitted(url: str, token: str | None, doing: str) -> AccessDenied:
    role = role_of(token) if token else None
    who = f"role {role!r}" if role else "this token's role"
    return AccessDenied(
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
