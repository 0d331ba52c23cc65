import math

import pytest

from pulsarjobs.retry import NO_RETRY, RetryPolicy


def no_jitter() -> float:
    return 0.5  # 2 * 0.5 - 1 == 0: the factor is exactly 1


def test_defaults() -> None:
    assert RetryPolicy() == RetryPolicy(
        max_attempts=25, initial_delay=1.0, max_delay=3600.0, multiplier=2.0, jitter=0.2
    )


def test_delay_grows_by_the_multiplier() -> None:
    policy = RetryPolicy(initial_delay=1.5, multiplier=3.0)
    assert [policy.delay(attempt, no_jitter) for attempt in (1, 2, 3, 4)] == [1.5, 4.5, 13.5, 40.5]


def test_delay_is_capped_at_max_delay() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=10.0)
    assert [policy.delay(attempt, no_jitter) for attempt in (4, 5, 6, 60)] == [
        8.0,
        10.0,
        10.0,
        10.0,
    ]


@pytest.mark.parametrize("multiplier", [2, 2.0, 10.0])
def test_delay_stays_capped_for_huge_attempt_numbers(multiplier: float) -> None:
    policy = RetryPolicy(multiplier=multiplier, max_delay=60.0)
    assert policy.delay(10**6, no_jitter) == 60.0


def test_constant_delay_with_multiplier_one() -> None:
    policy = RetryPolicy(initial_delay=5.0, multiplier=1.0)
    assert {policy.delay(attempt, no_jitter) for attempt in (1, 2, 100, 10**6)} == {5.0}


def test_zero_initial_delay_retries_at_once() -> None:
    policy = RetryPolicy(initial_delay=0.0)
    assert policy.delay(1) == policy.delay(10**6) == 0.0


def test_jitter_extremes_scale_the_delay_by_one_minus_and_plus_jitter() -> None:
    policy = RetryPolicy(initial_delay=10.0, jitter=0.25)
    assert policy.delay(1, lambda: 0.0) == pytest.approx(7.5)
    assert policy.delay(1, lambda: 0.999999) == pytest.approx(12.5, rel=1e-5)


def test_random_jitter_stays_within_bounds_and_varies() -> None:
    policy = RetryPolicy(initial_delay=100.0, jitter=0.2)
    delays = [policy.delay(1) for _ in range(2000)]
    assert all(80.0 <= delay <= 120.0 for delay in delays)
    assert max(delays) - min(delays) > 20.0  # spread over most of the band, not constant


def test_jitter_applies_after_the_cap() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=10.0, jitter=0.5)
    assert policy.delay(30, lambda: 0.0) == pytest.approx(5.0)


def test_delay_is_never_negative_even_with_an_out_of_range_rand() -> None:
    policy = RetryPolicy(initial_delay=10.0, jitter=1.0)
    assert policy.delay(1, lambda: 0.0) == 0.0
    assert policy.delay(1, lambda: -1.0) == 0.0


def test_delay_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 1, got 0"):
        RetryPolicy().delay(0)


def test_exhausted_after_max_attempts_runs() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.exhausted(attempt) for attempt in (1, 2, 3, 4)] == [False, False, True, True]


def test_no_retry_is_exhausted_after_the_first_run() -> None:
    assert NO_RETRY.max_attempts == 1
    assert NO_RETRY.exhausted(1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", -3),
        ("initial_delay", -0.5),
        ("initial_delay", math.inf),
        ("max_delay", -1.0),
        ("max_delay", math.nan),
        ("multiplier", 0.5),
        ("multiplier", math.inf),
        ("jitter", -0.1),
        ("jitter", 1.5),
        ("jitter", math.nan),
    ],
)
def test_invalid_values_are_rejected_naming_field_and_value(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"RetryPolicy\.{field} must be .*, got {value!r}$"):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(max_attempts=1, initial_delay=0.0, max_delay=0.0, multiplier=1.0, jitter=0.0),
        RetryPolicy(jitter=1.0),
    ],
)
def test_boundary_values_are_accepted(policy: RetryPolicy) -> None:
    assert policy.delay(1) >= 0.0
