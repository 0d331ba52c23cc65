"""A small client for Pulsar's admin REST API (`/admin/v2`), over httpx.

Topics are named in full (`persistent://tenant/namespace/name`) everywhere in this module.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import httpx

from pulsarjobs.errors import BrokerError, BrokerUnavailable, NotFound
from pulsarjobs.settings import Settings
from pulsarjobs.transport.access import admin_refusal, transport_failure
from pulsarjobs.transport.closing import Closing
from pulsarjobs.transport.topics import partition_topic


class Admin(Closing):
    def __init__(
        self,
        admin_url: str,
        token: str | None = None,
        timeout: float = 10.0,
        *,
        trust_file: str | None = None,
        validate_hostname: bool = True,
    ) -> None:
        self.url = admin_url.rstrip("/")
        self._token = token

        def authenticate(request: httpx.Request) -> None:
            # On every request, the redirects included: httpx drops the header of a redirect
            # to another origin, and a cluster's broker redirects to the topic's owner.
            if token:
                request.headers["Authorization"] = f"Bearer {token}"

        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            follow_redirects=True,
            event_hooks={"request": [authenticate]},
            verify=tls_context(trust_file, validate_hostname),
        )

    @classmethod
    def of(cls, settings: Settings, timeout: float = 10.0) -> Admin:
        """The admin API of the settings' broker, with their token and TLS trust."""
        return cls(
            settings.admin_url,
            token=settings.token,
            timeout=timeout,
            trust_file=settings.tls_trust_file,
            validate_hostname=settings.tls_validate_hostname,
        )

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

    def check_access(self, namespace: str) -> None:
        """Fail with one clear line when the broker refuses this token or this certificate:
        the binary protocol only times out then. Any role may list a namespace's topics that
        it has a permission on; 401 and 403 name the problem."""
        self._call("GET", f"/admin/v2/persistent/{namespace}")

    def ensure_namespace(self, namespace: str) -> bool:
        """Create `tenant/namespace` if it is missing; True when it was created."""
        response = self._request("PUT", f"/admin/v2/namespaces/{namespace}")
        if response.status_code == 409:
            return False
        check(response, self._token)
        return True

    def message_ttl(self, namespace: str) -> int | None:
        """The namespace's message TTL in seconds; None when it has none."""
        ttl = self._call("GET", f"/admin/v2/namespaces/{namespace}/messageTTL")
        return int(ttl) if ttl else None

    def set_message_ttl(self, namespace: str, seconds: int) -> None:
        self._call("POST", f"/admin/v2/namespaces/{namespace}/messageTTL", json=seconds)

    # -- namespaces ----------------------------------------------------------------------------

    def set_namespace_policy(self, namespace: str, policy: str, value: Any) -> None:
        """One namespace policy, e.g. `retention`, `messageTTL`, `deduplication`."""
        self._call("POST", f"/admin/v2/namespaces/{namespace}/{policy}", json=value)

    def grant(self, namespace: str, role: str, actions: list[str]) -> None:
        """Let `role` do `actions` (`produce`, `consume`) on every topic of the namespace;
        replaces what the role had there."""
        self._call("POST", f"/admin/v2/namespaces/{namespace}/permissions/{role}", json=actions)

    def revoke(self, namespace: str, role: str) -> None:
        self._call("DELETE", f"/admin/v2/namespaces/{namespace}/permissions/{role}")

    def permissions(self, namespace: str) -> dict[str, list[str]]:
        return dict(self._call("GET", f"/admin/v2/namespaces/{namespace}/permissions"))

    def grant_on_topic(self, topic: str, role: str, actions: list[str]) -> None:
        """Permissions on one topic, beside the namespace's; the topic is created if missing
        (a topic's permissions need the topic)."""
        created = self._request("PUT", topic_path(topic))
        if created.status_code != 409:  # 409: it exists
            check(created, self._token)
        self._call("POST", f"{topic_path(topic)}/permissions/{role}", json=actions)

    def revoke_on_topic(self, topic: str, role: str) -> None:
        self._call("DELETE", f"{topic_path(topic)}/permissions/{role}")

    def topic_permissions(self, topic: str) -> dict[str, list[str]]:
        """The roles with permissions on one topic: its own grants and its namespace's."""
        return dict(self._call("GET", f"{topic_path(topic)}/permissions"))

    # -- topics ------------------------------------------------------------------------------

    def topics(self, namespace: str) -> list[str]:
        """Non-partitioned topics and the partitions of partitioned ones."""
        return list(self._call("GET", f"/admin/v2/persistent/{namespace}"))

    def partitioned_topics(self, namespace: str) -> list[str]:
        return list(self._call("GET", f"/admin/v2/persistent/{namespace}/partitioned"))

    def partitions(self, topic: str) -> int:
        """How many partitions a topic has; 0 for a non-partitioned (or missing) one."""
        try:
            return int(self._call("GET", f"{topic_path(topic)}/partitions")["partitions"])
        except NotFound:  # a topic not yet created: not partitioned
            return 0

    def parts(self, topic: str) -> list[str]:
        """The topics that hold a topic's messages: its partitions, or itself."""
        count = self.partitions(topic)
        return [partition_topic(topic, index) for index in range(count)] if count else [topic]

    def create_topic(self, topic: str, partitions: int = 0) -> None:
        if partitions > 0:
            self._call("PUT", f"{topic_path(topic)}/partitions", json=partitions)
        else:
            self._call("PUT", topic_path(topic))

    def delete_topic(self, topic: str, *, partitioned: bool, force: bool = False) -> None:
        """Delete a topic; `force` also disconnects its producers and consumers."""
        suffix = "/partitions" if partitioned else ""
        self._call("DELETE", f"{topic_path(topic)}{suffix}", params={"force": str(force).lower()})

    def stats(
        self, topic: str, *, partitioned: bool = False, earliest: bool = False
    ) -> dict[str, Any]:
        """The broker's stats of a topic; raises NotFound for a topic that does not exist.
        `earliest`: each subscription's `earliestMsgPublishTimeInBacklog` too (a read)."""
        suffix = "partitioned-stats" if partitioned else "stats"
        params = {"getEarliestTimeInBacklog": "true"} if earliest else None
        return dict(self._call("GET", f"{topic_path(topic)}/{suffix}", params=params))

    def summed_stats(self, topic: str, *, earliest: bool = False) -> dict[str, Any]:
        """A topic's stats, partitioned or not: a partitioned topic's sum its partitions' (and
        list each consumer once per partition it reads). Raises NotFound as `stats` does."""
        return self.stats(topic, partitioned=self.partitions(topic) > 0, earliest=earliest)

    def deduplicating(self, topic: str) -> bool:
        """Whether de-duplication is active on the topic, on each partition of a partitioned
        one (a policy reaches the broker asynchronously)."""
        try:
            parts = [self.stats(part) for part in self.parts(topic)]
        except NotFound:
            return False
        return all(part.get("deduplicationStatus") == "Enabled" for part in parts)

    def internal_stats(self, topic: str) -> dict[str, Any]:
        """The managed ledger's view: cursors with their mark-delete positions and acked ranges."""
        return dict(self._call("GET", f"{topic_path(topic)}/internalStats"))

    def owner(self, topic: str) -> str:
        """The service URL of the broker that serves a topic (assigning one if none does)."""
        path = topic_path(topic).replace("/admin/v2/", "/lookup/v2/topic/", 1)
        found = self._call("GET", path)
        return str(found.get("brokerUrl") or found["brokerUrlTls"])  # TLS only: no brokerUrl

    def last_message_id(self, topic: str) -> tuple[int, int]:
        """(ledger, entry) of the newest message; entry -1 when the topic is empty."""
        found = self._call("GET", f"{topic_path(topic)}/lastMessageId")
        return int(found["ledgerId"]), int(found["entryId"])

    def enable_deduplication(self, topic: str) -> None:
        """Turn on de-duplication for one topic (a topic policy, applied asynchronously)."""
        self._call("POST", f"{topic_path(topic)}/deduplicationEnabled", json=True)

    def set_compaction_threshold(self, topic: str, size_bytes: int) -> None:
        """Compact the topic whenever this many bytes are waiting for compaction."""
        self._call("POST", f"{topic_path(topic)}/compactionThreshold", json=size_bytes)

    def set_dispatch_rate(self, topic: str, per_second: int | None) -> None:
        """Let each subscription of the topic take at most `per_second` messages a second
        (a topic policy, applied within moments); None removes the limit."""
        path = f"{topic_path(topic)}/subscriptionDispatchRate"
        if per_second is None:
            self._call("DELETE", path)
            return
        rate = {
            "dispatchThrottlingRateInMsg": per_second,
            "dispatchThrottlingRateInByte": -1,
            "ratePeriodInSecond": 1,
            "relativeToPublishRate": False,
        }
        self._call("POST", path, json=rate)

    def dispatch_rate(self, topic: str) -> int | None:
        """The topic's own subscription dispatch rate in messages a second; None: none set."""
        found = self._call("GET", f"{topic_path(topic)}/subscriptionDispatchRate")
        rate = int(found.get("dispatchThrottlingRateInMsg", -1)) if found else -1
        return rate if rate > 0 else None

    def topic_message_ttl(self, topic: str, *, applied: bool = False) -> int | None:
        """Seconds after which the topic's unacknowledged messages expire; None: never.
        `applied`: what is in force (the topic's own, else the namespace's, else the broker's)."""
        params = {"applied": str(applied).lower()}
        seconds = self._call("GET", f"{topic_path(topic)}/messageTTL", params=params)
        return int(seconds) if seconds else None

    def set_topic_message_ttl(self, topic: str, seconds: int | None) -> None:
        """Expire the topic's unacknowledged messages `seconds` after they were published, on
        every subscription (a topic policy); None removes the topic's own TTL."""
        path = f"{topic_path(topic)}/messageTTL"
        if seconds is None:
            self._call("DELETE", path)
        else:
            self._call("POST", path, params={"messageTTL": seconds})

    def backlog_eviction_size(self, topic: str, *, applied: bool = False) -> int | None:
        """Bytes of unacknowledged messages past which the broker evicts the topic's oldest (a
        storage backlog quota with the policy `consumer_backlog_eviction`); None: none. A
        quota with another policy holds or refuses producers and removes nothing: None too."""
        params = {"applied": str(applied).lower()}
        quotas = self._call("GET", f"{topic_path(topic)}/backlogQuotaMap", params=params) or {}
        quota = quotas.get("destination_storage") or {}
        size = int(quota.get("limitSize", -1))
        return size if size > 0 and quota.get("policy") == "consumer_backlog_eviction" else None

    def set_backlog_eviction_size(self, topic: str, size_bytes: int | None) -> None:
        """Evict the oldest unacknowledged messages of the topic once they take more than
        `size_bytes` (a topic policy); None removes the topic's own storage quota."""
        path = f"{topic_path(topic)}/backlogQuota"
        params = {"backlogQuotaType": "destination_storage"}
        if size_bytes is None:
            self._call("DELETE", path, params=params)
            return
        quota = {"limitSize": size_bytes, "limitTime": -1, "policy": "consumer_backlog_eviction"}
        self._call("POST", path, params=params, json=quota)

    def set_topic_retention(self, topic: str, minutes: int, size_mb: int = -1) -> None:
        """Keep the topic's messages `minutes` after they were read or, with no subscription,
        published (a topic policy); `size_mb` caps them (-1: no cap)."""
        retention = {"retentionTimeInMinutes": minutes, "retentionSizeInMB": size_mb}
        self._call("POST", f"{topic_path(topic)}/retention", json=retention)

    def topic_retention(self, topic: str) -> int | None:
        """The topic's own retention in minutes; None: none set."""
        found = self._call("GET", f"{topic_path(topic)}/retention")
        minutes = int(found.get("retentionTimeInMinutes", 0)) if found else 0
        return minutes or None

    def schema(self, topic: str, version: int) -> str | None:
        """The schema text a topic registered as `version`."""
        path = topic.removeprefix("persistent://")
        found = self._call("GET", f"/admin/v2/schemas/{quote(path)}/schema/{version}")
        return str(found["data"]) if found and found.get("data") is not None else None

    # -- plumbing ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        check(response, self._token)
        return response.json() if response.content else None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if (failure := transport_failure(self.url, exc)) is not None:
                raise failure from exc
            raise BrokerUnavailable(f"No Pulsar admin API answers at {self.url} ({exc}).") from exc


def tls_context(trust_file: str | None, validate_hostname: bool) -> ssl.SSLContext:
    """Trust the system's CAs, or only `trust_file` when given (a private CA)."""
    context = ssl.create_default_context(cafile=trust_file)
    context.check_hostname = validate_hostname
    return context


def topic_path(topic: str) -> str:
    """`persistent://tenant/namespace/name` as the admin API's path to it."""
    domain, separator, rest = topic.partition("://")
    tenant, namespace, name = rest.split("/", 2) if separator else ("", "", "")
    if not name:
        raise BrokerError(f"{topic!r} is not a full topic name (persistent://tenant/ns/name)")
    return f"/admin/v2/{domain}/{tenant}/{namespace}/{quote(name, safe='')}"


def check(response: httpx.Response, token: str | None = None) -> None:
    if response.is_success:
        return
    request = response.request
    doing = f"{request.method} {request.url.path}"
    base = str(request.url.copy_with(path="/", query=None)).rstrip("/")
    reason = pulsar_reason(response)
    if response.status_code == 404:
        if reason is None:  # Pulsar says why in JSON: this is some other server, or path
            kind = response.headers.get("content-type", "").split(";")[0] or "no content type"
            raise BrokerUnavailable(
                f"No Pulsar admin API at {base}: {doing} answered 404 ({kind}) without Pulsar's "
                "reason. Is the admin URL right (e.g. http://127.0.0.1:8080)?"
            )
        raise NotFound(reason)
    if refusal := admin_refusal(response.status_code, base, token, doing):
        raise refusal
    said = reason if reason is not None else response.text[:200]
    raise BrokerError(f"{doing} failed: {response.status_code} {said}".strip())


def pulsar_reason(response: httpx.Response) -> str | None:
    """The reason Pulsar gives with an error ({"reason": ...}); None for any other body."""
    try:
        found = response.json()
    except ValueError:
        return None
    reason = found.get("reason") if isinstance(found, dict) else None
    return None if reason is None else str(reason)
