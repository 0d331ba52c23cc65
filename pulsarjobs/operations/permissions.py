"""Who may do what in a namespace: grants on the namespace and on its single topics, listed and
revoked together (a role revoked on the namespace would otherwise keep its topic grants)."""

from __future__ import annotations

from pulsarjobs.transport.admin import Admin

Grants = dict[str, list[str]]  # role -> actions (produce, consume)


def topic_grants(admin: Admin, namespace: str) -> dict[str, Grants]:
    """The grants each topic of the namespace has beyond the namespace's own, by topic."""
    on_namespace = admin.permissions(namespace)
    found = {}
    for topic in topics_of(admin, namespace):
        beyond = {
            role: sorted(actions)
            for role, actions in admin.topic_permissions(topic).items()
            if set(actions) - set(on_namespace.get(role, []))  # the broker merges the two
        }
        if beyond:
            found[topic] = beyond
    return found


def revoke_role(admin: Admin, namespace: str, role: str) -> list[str]:
    """Take every permission of `role` away, on the namespace and on each of its topics; the
    topics it had grants on."""
    topics = [topic for topic, grants in topic_grants(admin, namespace).items() if role in grants]
    for topic in topics:
        admin.revoke_on_topic(topic, role)
    if role in admin.permissions(namespace):
        admin.revoke(namespace, role)
    return topics


def topics_of(admin: Admin, namespace: str) -> list[str]:
    """Its topics as grants name them: a partitioned topic once, not each partition."""
    partitioned = admin.partitioned_topics(namespace)
    plain = [topic for topic in admin.topics(namespace) if "-partition-" not in topic]
    return sorted(set(partitioned) | set(plain))
