"""Who may look, who may act, and from where.

Every page and every API call needs the dashboard's token (PULSARJOBS_DASHBOARD_TOKEN, or one
made up at start on a loopback address and printed in the URL to open, as Jupyter does): a
dashboard shows job arguments and can replay or delete jobs, so nothing is open to whoever
reaches the port. A browser proves it once, with `?token=` or the login form, and gets a cookie
holding an HMAC of the token (never the token itself: HttpOnly, SameSite=Strict); API clients
send `Authorization: Bearer <token>`.

Every change is a POST, and a POST must come from the dashboard's own pages: a browser says so
in `Sec-Fetch-Site: same-origin` (what Sidekiq 8.1 checks), an older one in `Origin`. A client
that sends neither is no browser, and is accepted only with the Bearer token, which a page of
another site cannot make a browser send. With `--read-only`, every POST but logging in is
refused.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import secrets
from typing import Literal
from urllib.parse import urlencode, urlsplit

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.types import ASGIApp

TOKEN_VARIABLE = "PULSARJOBS_DASHBOARD_TOKEN"
COOKIE = "pulsarjobs_dashboard"
# Reachable without the token (Kubernetes' probes carry none: they tell nothing of the jobs).
OPEN_PATHS = ("/static/", "/login", "/logout", "/livez", "/readyz")
SHORTEST_TOKEN = 16  # characters, off loopback: guessing must be hopeless
MACHINE_PATHS = ("/api/", "/metrics")  # asked by programs: refused, never sent to log in
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Our own pages name the page a post came from (back there after a lost session); no
    # other site sees our URLs. The URL that carries `?token=` sends none at all.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

FOREIGN = "Refused: this request did not come from the dashboard's own pages."

Proof = Literal["cookie", "bearer"]


class Secret:
    """The token, and the cookie value that proves a browser was given it."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.cookie_value = hmac.new(
            token.encode(), b"pulsarjobs-dashboard-session", hashlib.sha256
        ).hexdigest()

    @classmethod
    def generated(cls) -> Secret:
        return cls(secrets.token_urlsafe(24))

    def accepts(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.token.encode())

    def proof(self, request: Request) -> Proof | None:
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and hmac.compare_digest(cookie, self.cookie_value):
            return "cookie"
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.accepts(token.strip()):
            return "bearer"
        return None

    def log_in(self, response: Response) -> Response:
        response.set_cookie(COOKIE, self.cookie_value, httponly=True, samesite="strict")
        return response


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def from_own_pages(request: Request, proof: Proof | None) -> bool:
    """Whether a POST comes from the dashboard's own pages (or a client with the Bearer
    token); the host is compared, not the scheme, so that a TLS proxy in front still works."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if origin is not None:
        return urlsplit(origin).netloc == request.headers.get("host", "")
    return proof == "bearer"


def safe_next(target: str | None) -> str:
    """A path on this dashboard to go on to; never another site (`//evil`, `https://...`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class Guard(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, secret: Secret, read_only: bool) -> None:
        super().__init__(app)
        self.secret = secret
        self.read_only = read_only

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await self._guard(request, call_next)
        response.headers.update(SECURITY_HEADERS)
        if "token" in request.query_params:
            response.headers["Referrer-Policy"] = "no-referrer"
        return response

    async def _guard(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        proof = self.secret.proof(request)
        changes = request.method not in ("GET", "HEAD")
        foreign = changes and not from_own_pages(request, proof)
        if path.startswith(OPEN_PATHS):
            return refused(request, 403, FOREIGN) if foreign else await call_next(request)
        if "token" in request.query_params and not changes:
            return self._log_in_from_url(request)
        if proof is None:
            if path.startswith(MACHINE_PATHS):
                return refused(request, 401, "Log in: this dashboard needs its token.")
            if changes or request.headers.get("hx-request") == "true":  # a page's own request
                return to_log_in(request, "Log in: this dashboard needs its token.")
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(login_url(here), status_code=303)
        if foreign:
            return refused(request, 403, FOREIGN)
        if self.read_only and changes:
            return refused(request, 403, "Refused: this dashboard is read-only.")
        return await call_next(request)

    def _log_in_from_url(self, request: Request) -> Response:
        """`?token=` logs a browser in and leaves for the same URL without it."""
        if not self.secret.accepts(request.query_params["token"]):
            return RedirectResponse("/login?failed=1", status_code=303)
        query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        clean = request.url.path + (f"?{query}" if query else "")
        return self.secret.log_in(RedirectResponse(clean, status_code=303))


def refused(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return PlainTextResponse(message, status_code=status)


def login_url(back: str) -> str:
    """The login form, going on to `back` (a path of this dashboard) once logged in."""
    return f"/login?{urlencode({'next': safe_next(back)})}"


def to_log_in(request: Request, message: str) -> Response:
    """A page's own request without a session (it was lost: the cookie expired, the dashboard
    restarted): the whole page goes to the login form, and comes back to itself after."""
    if request.headers.get("hx-request") == "true":  # a live part's refresh: htmx follows this
        back = request.headers.get("hx-current-url", "/")
    else:  # a button's form post: back to the page it was on
        back = request.headers.get("referer", "/")
    parts = urlsplit(back)
    login = login_url(parts.path + (f"?{parts.query}" if parts.query else ""))
    page = (f'<!doctype html><meta http-equiv="refresh" content="0; url={html.escape(login)}">'
            f'<p>{html.escape(message)} <a href="{html.escape(login)}">Log in</a></p>')  # fmt: skip
    return HTMLResponse(page, status_code=401, headers={"HX-Redirect": login})
