"""The verdict table: every verdict walked through every part that acts on it, and no other place
that interprets outcome kinds."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, cast

import pytest

from pulsarjobs import App
from pulsarjobs.app import App as AppType
from pulsarjobs.clock import utc_now
from pulsarjobs.testing import PublishedMessage, TestRunner
from pulsarjobs.transport.topics import batch_events_topic, results_topic, topics_for
from pulsarjobs.wire.envelope import Envelope, JobError, decode
from pulsarjobs.wire.verdicts import Outcome, Publish, Verdict
from pulsarjobs.worker._flow_control import WorkerFlow
from pulsarjobs.worker._stats import WorkerStats
from pulsarjobs.worker.settle import Delivery
from pulsarjobs.workflows.results import JobResult

PACKAGE = Path(__file__).resolve().parents[2] / "pulsarjobs"
TABLE = PACKAGE / "wire" / "verdicts.py"
QUEUE = "default"


def settled_with(verdict: Verdict) -> tuple[Delivery, list[PublishedMessage], App]:
    """What the worker publishes before it acknowledges a job of a batch, with a unique key
    and a kept result, that ended with `verdict`."""
    app = App()
    error = JobError("ValueError", "no", "", utc_now(), "w")
    envelope = Envelope(id="job-1", type="greet", queue=QUEUE, batch_id="batch-1",
                        keep_result=60.0, unique_key="k", last_error=error)  # fmt: skip
    delivery = Delivery(topics_for(app.settings, QUEUE).jobs, "1:2:-1", b"as received")
    with TestRunner(app) as runner:
        pipeline = runner._pipeline  # the worker's own, on the in-memory transport
        stored = pipeline.store(QUEUE, delivery, Outcome(verdict, envelope, "why", value=42))
        if stored is not None:
            stored.result()
        published = runner.connection.take()
    return delivery, published, app


@pytest.mark.parametrize("verdict", list(Verdict))
def test_what_is_stored_before_the_ack_is_what_the_verdict_says(verdict: Verdict) -> None:
    delivery, published, app = settled_with(verdict)
    policy, topics = verdict.policy, topics_for(app.settings, QUEUE)
    by_topic = {message.topic: message for message in published}
    assert (topics.retry in by_topic) == (policy.publishes is Publish.RETRY)
    dead_lettered = policy.publishes in (Publish.DEAD_LETTER, Publish.DEAD_LETTER_AS_RECEIVED)
    assert (topics.dead in by_topic) == dead_lettered
    if dead_lettered:
        letter = by_topic[topics.dead]
        as_received = policy.publishes is Publish.DEAD_LETTER_AS_RECEIVED
        assert (letter.data == delivery.data) == as_received
        assert letter.properties["pulsarjobs-reason"] == "why"
        if not as_received:
            assert decode(letter.data).last_error is not None
    # Over: its result is kept and its batch hears of it, once, as succeeded or not.
    assert (results_topic(app.settings) in by_topic) == policy.over
    assert (batch_events_topic(app.settings) in by_topic) == policy.over
    if policy.over:
        result = JobResult.decode(by_topic[results_topic(app.settings)].data)
        event = json.loads(by_topic[batch_events_topic(app.settings)].data)
        assert event["ok"] == policy.succeeded
        if policy.succeeded:
            assert (result.value, result.error) == (42, None)
        else:
            assert result.error is not None
            expected = f"pulsarjobs.{policy.result_error}" if policy.result_error else "ValueError"
            assert result.error.type == expected


class _Keys:
    def __init__(self) -> None:
        self.released: list[str] = []

    def release(self, key: str, job_id: str) -> None:
        self.released.append(key)


class _App:
    def __init__(self) -> None:
        self.unique_keys = _Keys()


@pytest.mark.parametrize("verdict", list(Verdict))
def test_a_worker_gives_back_a_unique_key_unless_the_verdict_keeps_it(verdict: Verdict) -> None:
    app = _App()
    flow = WorkerFlow(cast(AppType, app), "w", 1)
    flow.settled(Outcome(verdict, Envelope(id="1", type="t", queue=QUEUE, unique_key="k")))
    flow.stop()  # gives back what it was to give back
    assert app.unique_keys.released == ([] if verdict.policy.keeps_unique_key else ["k"])


def test_each_verdict_moves_a_counter_of_the_worker() -> None:
    counters = set(WorkerStats().as_dict())
    assert {verdict.policy.counter for verdict in Verdict} <= counters


def test_a_job_still_to_run_keeps_its_key_and_its_place_and_goes_to_the_retry_topic() -> None:
    for verdict in set(Verdict) - {Verdict.SUPERSEDED}:
        policy = verdict.policy
        still_to_run = not policy.over
        assert policy.keeps_unique_key == still_to_run, verdict
        assert policy.holds_its_order == still_to_run, verdict
        assert (policy.publishes is Publish.RETRY) == still_to_run, verdict
        assert not policy.succeeded or policy.over, verdict


def test_a_superseded_copy_leaves_its_job_to_the_copy_that_carries_it_on() -> None:
    policy = Verdict.SUPERSEDED.policy
    assert not policy.over and policy.keeps_unique_key  # the job is still to finish, elsewhere
    assert policy.publishes is Publish.NOTHING and not policy.holds_its_order


def test_a_verdict_reads_as_its_kind() -> None:
    assert Verdict.DONE == "done" and f"{Verdict.DEFERRED}" == "deferred"
    assert Verdict("snoozed") is Verdict.SNOOZED


# -- the table is the only place outcome kinds are interpreted ---------------------------------

KINDS = {verdict.value for verdict in Verdict}


def _reads_a_kind(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in ("kind", "verdict")


def _names_a_verdict(node: ast.AST) -> bool:
    """A verdict's kind, `Verdict.X`, or a collection of kinds (a step's `kind`, say, is not)."""
    if isinstance(node, ast.Constant):
        return node.value in KINDS
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name) and node.value.id == "Verdict"
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(map(_names_a_verdict, node.elts))
    return isinstance(node, ast.Name)  # a name may hold one: count it


def interpretations(tree: ast.AST) -> list[int]:
    """Lines that compare an outcome's kind with a verdict, match on it, or list verdicts."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(map(_reads_a_kind, sides)) and any(map(_names_a_verdict, sides)):
                lines.append(node.lineno)
        elif isinstance(node, ast.Match) and _reads_a_kind(node.subject):
            lines.append(node.lineno)
        elif isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            strings = [item for item in items if isinstance(item, ast.Constant)]
            if len(strings) >= 2 and all(item.value in KINDS for item in strings):
                lines.append(node.lineno)
    return sorted(set(lines))


def test_no_module_but_the_table_interprets_outcome_kinds() -> None:
    found: dict[str, Any] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == TABLE:
            continue
        lines = interpretations(ast.parse(path.read_text(), str(path)))
        if lines:
            found[str(path.relative_to(PACKAGE.parent))] = lines
    assert found == {}, "ask the verdict's policy (pulsarjobs/wire/verdicts.py) instead"


@pytest.mark.parametrize(
    "source",
    [
        'if outcome.kind == "done": pass',
        'if outcome.kind in ("retry", "snoozed"): pass',
        "if outcome.kind is Verdict.DEAD: pass",
        'KEEPS_ITS_KEY = ("retry", "early", "snoozed")',
        'match outcome.kind:\n    case "done": pass',
        'COUNTER = {"done": "done", "retry": "retried"}',
        "if outcome.kind == wanted: pass",
    ],
)
def test_the_search_finds_each_way_of_interpreting_a_kind(source: str) -> None:
    assert interpretations(ast.parse(source)) == [1]


def test_a_topic_or_a_state_named_like_a_verdict_is_no_verdict() -> None:
    assert interpretations(ast.parse('if where == "dead" or state.get("state") == "done": 0')) == []


def test_a_kind_that_is_no_verdict_may_be_compared() -> None:
    assert interpretations(ast.parse('steps = [s for s in steps if s.kind != "internal"]')) == []
