import contextlib
import io
import json
import random
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import _pulsar
import fastavro
import pytest

from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.transport.schema_registry import pulsar_schema
from pulsarjobs.wire.envelope import (
    SCHEMA_JSON,
    ArgumentError,
    Envelope,
    EnvelopeError,
    JobArg,
    JobError,
    decode,
    encode,
    new_id,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "job_envelope.avsc"
WHEN = datetime(2031, 5, 17, 8, 30, 15, 123000, tzinfo=UTC)


def make_envelope(**changes: Any) -> Envelope:
    return Envelope(id="job-1", type="send_email", queue="default", created_at=WHEN).replace(
        **changes
    )


def round_trip(env: Envelope) -> Envelope:
    return decode(encode(env))


def schema_dict() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_JSON)
    return schema


def avro_datum(env: Envelope) -> dict[str, Any]:
    """``encode(env)`` read back with plain fastavro: the datum as another language sees it."""
    return cast(
        "dict[str, Any]",
        fastavro.schemaless_reader(io.BytesIO(encode(env)), fastavro.parse_schema(schema_dict())),
    )


def type_tree(value: object) -> object:
    """``value`` with every leaf replaced by its type, to tell ``True`` from ``1``."""
    if isinstance(value, list):
        return [type_tree(item) for item in value]
    if isinstance(value, Mapping):
        return {key: type_tree(item) for key, item in value.items()}
    return type(value)


def fastavro_bytes(schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    stream = io.BytesIO()
    fastavro.schemaless_writer(stream, fastavro.parse_schema(schema), datum)
    return stream.getvalue()


# --- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arg",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        1.0,
        -0.0,
        1e300,
        "",
        "héllo wörld ✓ 日本語 🚀",
        b"",
        b"\x00\xff binary",
        [],
        {},
        [1, "two", 3.0, None, [True, [b"deep"]]],
        {"nested": {"list": [{"k": "v"}], "empty": {}}, "ключ": "значение", "-type": "x"},
    ],
    ids=repr,
)
def test_every_argument_kind_round_trips_with_its_type(arg: JobArg) -> None:
    env = round_trip(make_envelope(args=(arg,), kwargs={"same": arg}))
    assert env.args == (arg,)
    assert env.kwargs == {"same": arg}
    assert type_tree(env.args[0]) == type_tree(env.kwargs["same"]) == type_tree(arg)


def test_bool_int_and_float_keep_their_types_inside_containers() -> None:
    env = round_trip(make_envelope(args=([True, 1, 1.0], {"flag": False, "n": 0, "x": 0.0})))
    assert type_tree(list(env.args)) == [[bool, int, float], {"flag": bool, "n": int, "x": float}]


def test_tuples_come_back_as_lists() -> None:
    env = round_trip(make_envelope(args=((1, (2, 3)),)))
    assert env.args == ([1, [2, 3]],)


def test_args_given_as_a_list_are_stored_as_a_tuple() -> None:
    env = make_envelope(args=["a", 1])
    assert env.args == ("a", 1)
    assert round_trip(env) == env


# The test vector of docs/protocol.md: the wire format must not change by accident.
PROTOCOL_EXAMPLE_HEX = """
40 39 66 31 63 32 65 34 62 37 61 36 64 34 66 30 65 38 62 33 61 32 63 31 64 30 65 39 66 38
61 37 62 14 73 65 6e 64 5f 65 6d 61 69 6c 0e 64 65 66 61 75 6c 74 02 08 0a 61 40 62 2e 63
00 04 0e 72 65 74 72 69 65 73 04 06 08 74 61 67 73 0c 02 08 02 78 00 00 80 a0 d5 ed ee 66
02 32 d0 0f 80 ba b7 03 00 00 00 00 00 00 00 40 9a 99 99 99 99 99 c9 3f 00 00
"""


def test_protocol_doc_example_encodes_to_its_test_vector() -> None:
    env = Envelope(
        id="9f1c2e4b7a6d4f0e8b3a2c1d0e9f8a7b",
        type="send_email",
        queue="default",
        args=("a@b.c",),
        kwargs={"retries": 3, "tags": ["x"]},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    expected = bytes.fromhex(PROTOCOL_EXAMPLE_HEX)
    assert encode(env) == expected
    assert decode(expected) == env
    datum = avro_datum(env)
    assert datum["args"] == [{"v": "a@b.c"}]
    assert datum["kwargs"] == {"retries": {"v": 3}, "tags": {"v": [{"v": "x"}]}}
    assert datum["created_at"] == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            make_envelope(args=("x", {"when": datetime.now(UTC)})),
            "args[1]['when']: datetime is not a job argument; use an ISO string or a number",
        ),
        (make_envelope(args=([0, [1, 2**63]],)), "args[0][1][1]: int 9223372036854775808"),
        (make_envelope(args=(-(2**63) - 1,)), "args[0]: int -9223372036854775809"),
        (make_envelope(kwargs={"ids": [1, {2, 3}]}), "kwargs['ids'][1]: set is not a job argument"),
        (
            make_envelope(kwargs={"amount": Decimal("1.5")}),
            "kwargs['amount']: Decimal is not a job",
        ),
        (make_envelope(kwargs={"day": date(2030, 1, 1)}), "kwargs['day']: date is not a job"),
        (make_envelope(args=({1: "one"},)), "args[0]: key 1 is a int; keys must be str"),
        (make_envelope(kwargs={"m": {"k": object()}}), "kwargs['m']['k']: object is not a job"),
    ],
)
def test_unencodable_argument_is_reported_with_its_path(env: Envelope, message: str) -> None:
    with pytest.raises(ArgumentError) as raised:
        encode(env)
    assert str(raised.value).startswith(message)


def test_non_str_keyword_argument_name_is_rejected() -> None:
    with pytest.raises(ArgumentError, match=r"^kwargs: key 1 is a int; keys must be str"):
        encode(make_envelope(kwargs={1: "x"}))


@pytest.mark.parametrize("caught_as", [EnvelopeError, ValueError, PulsarJobsError])
def test_argument_errors_can_be_caught_as(caught_as: type[Exception]) -> None:
    with pytest.raises(caught_as, match=r"^args\[0\]: object is not a job argument"):
        encode(make_envelope(args=(object(),)))


# --- other fields -------------------------------------------------------------------------


def test_all_fields_round_trip() -> None:
    error = JobError(
        type="httpx.ConnectError",
        message="connection refused ✗",
        traceback="Traceback ...",
        failed_at=WHEN + timedelta(seconds=1),
        worker="worker-7",
    )
    env = make_envelope(
        id=new_id(),
        run_at=WHEN + timedelta(minutes=5),
        attempt=3,
        retry=RetryPolicy(max_attempts=7, initial_delay=0.25, max_delay=90.0, multiplier=1.5),
        timeout=2.5,
        expires_at=WHEN + timedelta(days=1),
        meta={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        last_error=error,
    )
    assert round_trip(env) == env


def test_optional_fields_default_to_none_and_empty() -> None:
    env = round_trip(make_envelope())
    assert (env.run_at, env.timeout, env.expires_at, env.last_error) == (None, None, None, None)
    assert (env.args, env.kwargs, env.meta, env.attempt) == ((), {}, {}, 1)
    assert env.retry == RetryPolicy()


def test_decoded_datetimes_are_utc_to_the_millisecond() -> None:
    paris = timezone(timedelta(hours=2))
    local = datetime(2031, 5, 17, 10, 30, 15, 123999, tzinfo=paris)
    env = round_trip(make_envelope(created_at=local, run_at=local, expires_at=local))
    for value in (env.created_at, env.run_at, env.expires_at):
        assert value == datetime(2031, 5, 17, 8, 30, 15, 123000, tzinfo=UTC)
        assert value is not None and value.tzinfo is UTC


def test_created_at_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC)
    env = Envelope(id="j", type="t", queue="q")
    assert env.created_at.tzinfo is UTC
    assert before <= env.created_at <= datetime.now(UTC)


@pytest.mark.parametrize("name", ["created_at", "run_at", "expires_at"])
def test_naive_datetimes_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} is a naive datetime.*pass an aware one"):
        make_envelope(**{name: datetime(2030, 1, 1)})


def test_naive_failed_at_is_rejected() -> None:
    with pytest.raises(ValueError, match="failed_at is a naive datetime"):
        JobError.from_exception(RuntimeError(), "w", now=datetime(2030, 1, 1))


def test_attempt_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 1, got 0"):
        make_envelope(attempt=0)


def test_replace_returns_a_changed_copy() -> None:
    env = make_envelope()
    retried = env.replace(attempt=2)
    assert (env.attempt, retried.attempt) == (1, 2)
    assert retried.replace(attempt=1) == env


def test_new_id_is_a_fresh_uuid_hex() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(job_id) == 32 and int(job_id, 16) >= 0 for job_id in ids)


# --- JobError -----------------------------------------------------------------------------


def fail_deeply(depth: int) -> None:
    if depth == 0:
        raise KeyError("missing")
    fail_deeply(depth - 1)


def test_job_error_from_exception_describes_the_failure() -> None:
    try:
        fail_deeply(3)
    except KeyError as exc:
        error = JobError.from_exception(exc, "worker-1", now=WHEN)
    assert (error.type, error.message, error.worker, error.failed_at) == (
        "KeyError",
        "'missing'",
        "worker-1",
        WHEN,
    )
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "fail_deeply" in error.traceback
    assert error.traceback.endswith("KeyError: 'missing'\n")
    assert error.summary == "KeyError: 'missing'"


def test_job_error_names_non_builtin_types_with_their_module() -> None:
    error = JobError.from_exception(json.JSONDecodeError("bad", "doc", 0), "w")
    assert error.type == "json.decoder.JSONDecodeError"
    assert error.failed_at.tzinfo is UTC


def test_job_error_keeps_the_last_8000_characters_of_the_traceback() -> None:
    try:
        raise ValueError("start" + "x" * 9000 + "end")
    except ValueError as exc:
        error = JobError.from_exception(exc, "w")
    assert len(error.traceback) == 8000
    assert error.traceback.endswith("xxxend\n")
    assert "Traceback" not in error.traceback


# --- decoding failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\xff" * 64, b"not an avro envelope at all, just some text"],
    ids=repr,
)
def test_garbage_bytes_raise_envelope_error(data: bytes) -> None:
    with pytest.raises(EnvelopeError, match="not a job envelope"):
        decode(data)


def test_every_truncation_raises_envelope_error() -> None:
    data = encode(make_envelope(args=("a@b.c", [1, 2.5]), kwargs={"k": b"v"}, timeout=1.0))
    for length in range(len(data)):
        with pytest.raises(EnvelopeError):
            decode(data[:length])


def test_corrupted_bytes_decode_or_raise_envelope_error_never_anything_else() -> None:
    data = encode(make_envelope(args=("a@b.c", [1, {"k": 2.5}]), kwargs={"b": b"\x00"}))
    rng = random.Random(1234)
    for _ in range(2000):
        corrupted = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            corrupted[rng.randrange(len(corrupted))] = rng.randrange(256)
        with contextlib.suppress(EnvelopeError):
            decode(bytes(corrupted))


def test_trailing_bytes_raise_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="1 bytes left"):
        decode(encode(make_envelope()) + b"\x00")


def test_datum_of_another_schema_raises_envelope_error() -> None:
    other = {
        "type": "record",
        "name": "Order",
        "fields": [{"name": "customer", "type": "string"}, {"name": "total", "type": "double"}],
    }
    with pytest.raises(EnvelopeError):
        decode(fastavro_bytes(other, {"customer": "alice", "total": 12.5}))


def test_incompatible_writer_schema_raises_envelope_error() -> None:
    other = {"type": "record", "name": "Order", "fields": [{"name": "total", "type": "double"}]}
    with pytest.raises(EnvelopeError):
        decode(fastavro_bytes(other, {"total": 1.0}), writer_schema=json.dumps(other))


@pytest.mark.parametrize("writer_schema", ["{not json", '{"type": "no-such-type"}'])
def test_invalid_writer_schema_raises_envelope_error(writer_schema: str) -> None:
    with pytest.raises(EnvelopeError, match="writer schema is not a valid Avro schema"):
        decode(encode(make_envelope()), writer_schema=writer_schema)


# --- schema and evolution -----------------------------------------------------------------


def test_schema_json_is_the_schema_file() -> None:
    assert json.loads(SCHEMA_JSON) == json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_schema_fields_are_documented_and_optional_ones_default() -> None:
    schema = schema_dict()
    assert (schema["namespace"], schema["name"]) == ("io.pulsarjobs.v1", "JobEnvelope")
    assert schema["doc"]
    names = [field["name"] for field in schema["fields"]]
    assert names == [
        "id", "type", "queue", "args", "kwargs", "created_at", "attempt", "retry", "meta",
        "extras",
    ]  # fmt: skip
    extras = schema["fields"][-1]["type"][1]["fields"]
    assert [field["name"] for field in extras] == [
        "run_at", "timeout_ms", "expires_at", "last_error", "unique_key", "order_key",
        "limit_key", "snoozes", "batch_id", "keep_result_ms", "chain", "debounce_key",
        "fair_key", "fair_weight", "earlier_errors",
    ]  # fmt: skip
    for field in schema["fields"] + extras:
        assert field["doc"], field["name"]
        if isinstance(field["type"], list):
            assert field["type"][0] == "null" and field["default"] is None, field["name"]
    assert schema["fields"][names.index("meta")]["default"] == {}


def test_a_plain_job_sends_null_extras_and_any_option_sends_them_all() -> None:
    assert avro_datum(make_envelope())["extras"] is None
    extras = avro_datum(make_envelope(unique_key="k"))["extras"]
    assert extras["unique_key"] == "k"
    assert (extras["run_at"], extras["snoozes"], extras["chain"]) == (None, 0, None)


def test_decode_reads_data_from_a_newer_writer_with_an_extra_field() -> None:
    newer = schema_dict()
    newer["fields"].append(
        {"name": "priority", "type": ["null", "int"], "default": None, "doc": "added later"}
    )
    env = make_envelope(args=("a@b.c", b"\x00raw"), kwargs={"retries": 3}, attempt=2)
    data = fastavro_bytes(newer, {**avro_datum(env), "priority": 5})

    assert decode(data, writer_schema=json.dumps(newer)) == env
    with pytest.raises(EnvelopeError):  # the extra field is only skipped with the writer schema
        decode(data)


def older_extras(schema: dict[str, Any], without: str) -> dict[str, Any]:
    """``schema`` as it was before its Extras had the field ``without``."""
    extras = schema["fields"][-1]["type"][1]
    extras["fields"] = [field for field in extras["fields"] if field["name"] != without]
    return schema


def test_a_job_written_before_snoozes_existed_reads_as_never_snoozed() -> None:
    older = older_extras(schema_dict(), without="snoozes")
    env = make_envelope(attempt=3, timeout=5.0)
    datum = avro_datum(env)
    del datum["extras"]["snoozes"]
    data = fastavro_bytes(older, datum)
    assert decode(data, writer_schema=json.dumps(older)) == env
    assert decode(encode(env.replace(snoozes=4))).snoozes == 4


def test_an_older_reader_without_an_optional_field_reads_current_data() -> None:
    older = older_extras(schema_dict(), without="expires_at")
    env = make_envelope(args=("a@b.c",), expires_at=WHEN, timeout=30.0)

    old_reader = fastavro.parse_schema(older)
    datum = cast(
        "dict[str, Any]",
        fastavro.schemaless_reader(
            io.BytesIO(encode(env)), fastavro.parse_schema(schema_dict()), old_reader
        ),
    )
    assert "expires_at" not in datum["extras"]
    assert datum["args"] == [{"v": "a@b.c"}]
    assert datum["extras"]["timeout_ms"] == 30000
    assert datum["meta"] == {}


def test_writer_schema_equal_to_ours_in_other_formatting_decodes() -> None:
    env = make_envelope(args=(1,))
    pretty = json.dumps(schema_dict(), indent=4, sort_keys=True)
    assert decode(encode(env), writer_schema=pretty) == env


# --- Pulsar schema ------------------------------------------------------------------------


def test_pulsar_schema_registers_our_avro_schema_and_passes_bytes_through() -> None:
    schema = pulsar_schema()
    info = schema.schema_info()
    assert info.schema_type() == _pulsar.SchemaType.AVRO
    assert json.loads(info.schema()) == schema_dict()
    data = encode(make_envelope())
    assert schema.encode(data) is data
    assert schema.decode(data) is data
    assert pulsar_schema() is schema


def test_pulsar_schema_text_works_as_writer_schema() -> None:
    env = make_envelope(kwargs={"x": [1, 2]})
    assert decode(encode(env), writer_schema=pulsar_schema().schema_info().schema()) == env
