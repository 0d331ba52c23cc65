"""A small client for Pulsar's admin REST API (`/admin/v2`), over httpx."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from pulsarjobs.errors import BrokerError, BrokerUnavailable


class Admin:
    def __init__(self, admin_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = admin_url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Admin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def healthy(self) -> bool:
        """True once the broker serves: its health check writes and reads a message."""
        try:
            return self._http.get("/admin/v2/brokers/health").status_code == 200
        except httpx.HTTPError:
            return False

    def namespaces(self, tenant: str) -> list[str]:
        return list(self._call("GET", f"/admin/v2/namespaces/{tenant}"))

    def ensure_namespace(self, namespace: str) -> bool:
        """Create `tenant/namespace` if it is missing; True when it was created."""
        response = self._request("PUT", f"/admin/v2/namespaces/{namespace}")
        if response.status_code == 409:
            return False
        check(response)
        return True

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        check(response)
        return response.json() if response.content else None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise BrokerUnavailable(f"No Pulsar admin API answers at {self.url} ({exc}).") from exc


def check(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        reason = response.json().get("reason", response.text)
    except ValueError:
        reason = response.text
    raise BrokerError(
        f"{response.request.method} {response.request.url.path} failed: "
        f"{response.status_code} {reason}".strip()
    )
