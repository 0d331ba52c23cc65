"""Arguments are checked against the job's plain annotations: refused at enqueue with
ArgumentError, and dead-lettered at once by the worker (here the TestRunner, which runs the
worker's executor) when another producer sent them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Optional

import pytest

from pulsarjobs.app import App
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.jobs import Job, JobCall
from pulsarjobs.testing import TestRunner
from pulsarjobs.wire.envelope import ArgumentError

ACCEPTED = None


def job_taking(app: App, annotation: object, name: str = "take") -> Job[Any, Any]:
    """A job of one parameter, `value`, annotated with `annotation` (as a string, as under
    `from __future__ import annotations`, when it is one)."""

    def take(value):  # type: ignore[no-untyped-def]
        return None

    take.__annotations__ = {"value": annotation}
    return app.job(name=name)(take)


# annotation, value: None if it is accepted, else how the worker and enqueue say it is not
TABLE: list[tuple[object, object, str | None]] = [
    (str, "ada@example.com", ACCEPTED),
    (str, 123, "args[0] (value): expected str, got int 123"),
    (int, 7, ACCEPTED),
    (int, True, "args[0] (value): expected int, got bool True"),
    (int, 7.0, "args[0] (value): expected int, got float 7.0"),
    (float, 1.5, ACCEPTED),
    (float, 1, ACCEPTED),  # a float may travel as an int
    (float, False, "args[0] (value): expected float, got bool False"),
    (float, "1.5", "args[0] (value): expected float, got str '1.5'"),
    (bool, True, ACCEPTED),
    (bool, 1, "args[0] (value): expected bool, got int 1"),
    (bytes, b"\x00", ACCEPTED),
    (bytes, "x", "args[0] (value): expected bytes, got str 'x'"),
    (None, None, ACCEPTED),
    (None, 0, "args[0] (value): expected None, got int 0"),
    (int | None, None, ACCEPTED),
    (int | None, 3, ACCEPTED),
    (int | None, "3", "args[0] (value): expected int | None, got str '3'"),
    (Optional[str], None, ACCEPTED),  # noqa: UP045 - the old spelling is checked too
    (Optional[str], 1, "args[0] (value): expected str | None, got int 1"),  # noqa: UP045
    (int | str, "a", ACCEPTED),
    (int | bool, True, ACCEPTED),
    (float | str, True, "args[0] (value): expected float | str, got bool True"),
    (list[int], [1, 2, 3], ACCEPTED),
    (list[int], (1, 2), ACCEPTED),  # a tuple travels as a list
    (list[int], [1, 2, "3"], "args[0][2] (value): expected int, got str '3'"),
    (list[int], "123", "args[0] (value): expected list[int], got str '123'"),
    (list[list[float]], [[1, 2.5], [True]], "args[0][1][0] (value): expected float, got bool True"),
    (list, [1, "a", None], ACCEPTED),
    (list, {"a": 1}, "args[0] (value): expected list, got dict {'a': 1}"),
    (dict[str, float], {"a": 1, "b": 2.5}, ACCEPTED),
    (dict[str, float], {"a": 1, "b": "x"}, "args[0]['b'] (value): expected float, got str 'x'"),
    (
        dict[str, list[int] | None],
        {"a": None, "b": [1, None]},
        "args[0]['b'][1] (value): expected int, got None",
    ),
    (dict, [], "args[0] (value): expected dict, got list []"),
    (list[int] | None, None, ACCEPTED),
    (list[int] | None, [1, "x"], "args[0][1] (value): expected int, got str 'x'"),
    (list[int] | dict[str, int], {"a": "x"}, "args[0]['a'] (value): expected int, got str 'x'"),
    (Annotated[int, "an id"], "7", "args[0] (value): expected int, got str '7'"),
    ("list[int]", ["x"], "args[0][0] (value): expected int, got str 'x'"),  # resolved
    ("int | None", 1.5, "args[0] (value): expected int | None, got float 1.5"),
    ("x" * 80, 1, ACCEPTED),  # a name that does not exist: nothing is checked
    (list[Any], [object.__name__, 1, None], ACCEPTED),  # the list is checked, not its items
    (list[Any], "x", "args[0] (value): expected list, got str 'x'"),
    # Not plain: never checked.
    (Any, 1, ACCEPTED),
    (object, 1, ACCEPTED),
    (datetime, "2026-01-01", ACCEPTED),
    (Sequence[int], ["x"], ACCEPTED),
    (Literal["a", "b"], "c", ACCEPTED),
    (dict[int, str], {"1": 2}, ACCEPTED),
    (int | datetime, "x", ACCEPTED),  # a union one of whose members is not plain
]


@pytest.mark.parametrize(("annotation", "value", "error"), TABLE)
def test_an_argument_is_checked_against_its_plain_annotation_at_enqueue(
    app: App, runner: TestRunner, annotation: object, value: object, error: str | None
) -> None:
    take = job_taking(app, annotation)
    if error is None:
        take.enqueue(value)
        runner.run_all()
        assert runner.runs(take) == 1
        return
    with pytest.raises(ArgumentError) as refused:
        take.enqueue(value)
    assert str(refused.value) == f"its args and kwargs do not fit take{take.signature}: {error}"
    assert runner.pending == []


@pytest.mark.parametrize(("annotation", "value", "error"), [r for r in TABLE if r[2]])
def test_an_argument_not_of_its_annotated_type_from_another_producer_is_dead_at_once(
    app: App, runner: TestRunner, annotation: object, value: object, error: str
) -> None:
    take = job_taking(app, annotation)
    unchecked = app.envelope(JobCall("elsewhere")).replace(type="take", args=(value,))
    app.publish_envelope(unchecked)  # as a producer that does not check: Go, Java, the CLI
    runner.run_all()
    assert runner.runs(take) == 0
    [dead] = runner.dead
    assert dead.attempt == 1
    assert dead.last_error is not None and dead.last_error.type == "pulsarjobs.BadArguments"
    assert runner.outcomes[-1].reason == f"BadArguments: take{take.signature}: {error}"


def test_score_signup_with_an_int_email_is_refused_and_not_retried_for_hours(
    app: App, runner: TestRunner
) -> None:
    emails: list[str] = []

    @app.job
    def score_signup(email: str) -> None:
        emails.append(email.lower())

    @app.job
    async def score_signup_async(email: str) -> None:
        emails.append(email.lower())

    for job in (score_signup, score_signup_async):
        with pytest.raises(ArgumentError, match=r"args\[0\] \(email\): expected str, got int 123"):
            job.enqueue(123)  # type: ignore[arg-type]
        with pytest.raises(ArgumentError, match=r"args\[0\] \(email\): expected str, got int"):
            asyncio.run(job.enqueue_async(123))  # type: ignore[arg-type]
        with pytest.raises(ArgumentError, match=r"kwargs\['email'\]: expected str, got int 1"):
            app.enqueue_many([job.call("ada@example.com"), job.call(email=1)])  # type: ignore[arg-type]
    assert runner.pending == []  # none of them was sent
    for job in (score_signup, score_signup_async):
        sent_elsewhere = app.envelope(job.call("x")).replace(args=(123,))
        app.publish_envelope(sent_elsewhere)
    runner.run_all()
    assert runner.runs(score_signup) == runner.runs(score_signup_async) == 0
    assert [outcome.kind for outcome in runner.outcomes] == ["dead", "dead"]
    assert [outcome.reason for outcome in runner.outcomes] == [
        "BadArguments: score_signup(email: 'str') -> 'None': args[0] (email): expected str, "
        "got int 123",
        "BadArguments: score_signup_async(email: 'str') -> 'None': args[0] (email): expected "
        "str, got int 123",
    ]
    assert emails == []


def test_extra_positional_keyword_and_keyword_only_arguments_are_checked(app: App) -> None:
    @app.job
    def tag(item: int, *labels: str, weight: float = 1.0, **extra: bool) -> None: ...

    app.envelope(tag.call(1, "a", "b", weight=2, strict=True))  # all of their types
    for call, error in [
        (tag.call(1, "a", 2), "args[2] (*labels): expected str, got int 2"),  # type: ignore[arg-type]
        (tag.call(1, weight="2"), "kwargs['weight']: expected float, got str '2'"),  # type: ignore[arg-type]
        (tag.call(1, strict=1), "kwargs['strict']: expected bool, got int 1"),  # type: ignore[arg-type]
        (tag.call(item="1"), "kwargs['item']: expected int, got str '1'"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(ArgumentError) as refused:
            app.envelope(call)
        assert str(refused.value).endswith(f": {error}")


def test_an_unannotated_parameter_is_not_checked_beside_an_annotated_one(app: App) -> None:
    @app.job
    def mixed(anything, count: int) -> None:  # type: ignore[no-untyped-def]
        ...

    app.envelope(mixed.call({"a": [1]}, 2))
    app.envelope(mixed.call(anything=b"x", count=2))
    with pytest.raises(ArgumentError, match=r"kwargs\['count'\]: expected int, got str '2'"):
        app.envelope(mixed.call(anything=None, count="2"))  # type: ignore[arg-type]


def test_a_name_the_module_defines_after_the_job_is_resolved_at_the_first_enqueue(
    app: App,
) -> None:
    module: dict[str, Any] = {}
    exec("def later(n: 'Count') -> None: ...", module)
    later = app.job(module["later"])
    module["Count"] = int  # as a module that declares its jobs before its aliases
    with pytest.raises(ArgumentError, match=r"args\[0\] \(n\): expected int, got str 'x'"):
        later.enqueue("x")


def test_a_job_whose_annotations_cannot_be_resolved_is_not_checked(
    app: App, runner: TestRunner
) -> None:
    class Local:  # not in the module's namespace: its name cannot be resolved
        pass

    @app.job
    def local(n: int, thing: Local) -> None: ...

    local.enqueue("not an int", thing="x")  # type: ignore[arg-type]
    runner.run_all()
    assert runner.runs(local) == 1


def test_a_chain_link_that_receives_the_result_is_checked_once_it_has_it(
    app: App, runner: TestRunner
) -> None:
    @app.job
    def count_words(text: str) -> int | str:
        return len(text.split()) if text else "none"

    @app.job
    def double(n: int, times: int = 2) -> int:
        return n * times

    with pytest.raises(ArgumentError, match=r"chain link 2 \(double\): .*args\[1\] \(times\)"):
        app.chain(count_words.call("a b"), double.call("2"), pass_result=True)  # type: ignore[arg-type]
    good = app.chain(count_words.call("a b c"), double.call(), pass_result=True)  # type: ignore[call-arg]
    bad = app.chain(count_words.call(""), double.call(), pass_result=True)  # type: ignore[call-arg]
    runner.run_all()
    assert {envelope.id for envelope in runner.done} == {*good.job_ids, bad.job_ids[0]}
    assert [envelope.id for envelope in runner.dead] == [bad.last_id]
    assert runner.outcomes[-1].reason == (
        f"BadArguments: double{double.signature}: args[0] (n): expected int, got str 'none'"
    )


def test_a_schedule_and_a_batch_callback_are_checked_where_they_are_declared(
    app: App, runner: TestRunner
) -> None:
    @app.job
    def report(day: int) -> None: ...

    with pytest.raises(
        ConfigurationError, match=r"schedule report: .*args\[0\] \(day\): expected int, got str"
    ):
        app.schedule(report, "0 9 * * *", args=("monday",))
    refused = pytest.raises(ArgumentError, match=r"args\[0\] \(day\): expected int, got str 'x'")
    with refused, app.batch(on_complete=report.call("x")) as batch:  # type: ignore[arg-type]
        batch.enqueue(report.call(1))
    assert runner.pending == []
