"""Chains: jobs that run one after the other, each once the one before it succeeded.

No state lives outside the jobs: the first link is enqueued carrying the chain (its id, its
place, and the envelopes of the links after it). The worker that settles a link successfully
publishes the next link, carrying the rest, and only once the broker has stored it acknowledges
the link that ran (settle.py): nothing is lost, and a link runs twice only as any job may (at
least once). A link that fails for good goes to the dead letters like any job, saying which link
it was, and the chain stops there; replaying that dead letter resumes the chain. The chain
settles when its last link does: `app.result(chain.last_id)` is the chain's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pulsarjobs.wire.argtypes import PASSED
from pulsarjobs.wire.envelope import ArgumentError, Chain, Envelope, encode, new_id
from pulsarjobs.wire.values import Unencodable, to_value

if TYPE_CHECKING:
    from pulsarjobs.app_view import AppView
    from pulsarjobs.jobs import JobCall

CHAIN_ID = "pulsarjobs-chain-id"  # dead-letter properties of a chain's link
CHAIN_LINK = "pulsarjobs-chain-link"  # "2 of 3"


@dataclass(frozen=True, slots=True)
class Chained:
    """An enqueued chain: its id and its links' job ids, in order."""

    id: str
    job_ids: tuple[str, ...]

    @property
    def last_id(self) -> str:
        """The last link's job id: its result is the chain's."""
        return self.job_ids[-1]


def first_link(
    app: AppView, calls: Sequence[JobCall], pass_result: bool, keep_result: timedelta | None
) -> tuple[Envelope, Chained]:
    """The first link's envelope, carrying the others, ready to enqueue; each link is checked
    here, at the caller, as a job enqueued alone would be."""
    if len(calls) < 2:
        raise ValueError(f"a chain links at least two jobs, got {len(calls)}")
    links = []
    for number, call in enumerate(calls, 1):
        if call.order_key is not None or call.unique_key is not None:
            raise ValueError(
                f"chain link {number} ({call.type}): a link cannot be ordered or unique"
            )
        if number == len(calls) and keep_result is not None:
            call = call.with_options(keep_result=keep_result)
        passed = pass_result and number > 1  # checked with a stand-in for what it receives
        try:
            link = app.envelope(call.with_options(args=(PASSED, *call.args)) if passed else call)
            link = link.replace(args=call.args, unique_key=None)
            encode(link)
        except ArgumentError as exc:
            raise ArgumentError(f"chain link {number} ({call.type}): {exc}") from None
        links.append(link)
    chain = Chain(new_id(), 1, len(links), pass_result, tuple(links[1:]))
    return links[0].replace(chain=chain), Chained(chain.id, tuple(link.id for link in links))


def unpassable(envelope: Envelope, value: Any) -> str | None:
    """Why a link's return value cannot be passed to the next link, if it cannot."""
    chain = envelope.chain
    if chain is None or not chain.pass_result or not chain.next:
        return None
    try:
        to_value(value)
    except Unencodable as exc:
        reason = exc.to_argument_error("the return value")
        return f"{envelope.type}: {reason}; a chain passes on what a job argument may be"
    return None


def next_link(envelope: Envelope, value: Any) -> Envelope | None:
    """The link to enqueue once `envelope`'s job succeeded with `value`, carrying the rest. It
    keeps the time it was created with its chain: a cancel of its id since then applies."""
    chain = envelope.chain
    if chain is None or not chain.next:
        return None
    link, rest = chain.next[0], chain.next[1:]
    args = (value, *link.args) if chain.pass_result else link.args
    place = Chain(chain.id, chain.link + 1, chain.links, chain.pass_result, rest, envelope.id)
    return link.replace(args=args, chain=place)


def dead_letter_properties(chain: Chain) -> dict[str, str]:
    return {CHAIN_ID: chain.id, CHAIN_LINK: f"{chain.link} of {chain.links}"}
