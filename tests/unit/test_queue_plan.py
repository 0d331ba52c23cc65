import pytest

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.worker.feed import QueuePlan


def test_plain_list_is_strict_in_the_given_order() -> None:
    plan = QueuePlan.parse("critical, default,low")
    assert (plan.names, plan.strict) == (("critical", "default", "low"), True)


def test_weights_make_it_weighted() -> None:
    plan = QueuePlan.parse(["critical:6", "default:3", "low:1"])
    assert (plan.names, plan.weights, plan.strict) == (
        ("critical", "default", "low"),
        (6, 3, 1),
        False,
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "at least one queue"),
        ("a:2,b", "a weight to every queue or to none"),
        ("a:0", "whole number >= 1"),
        ("a:x", "whole number >= 1"),
        ("a,a", "named twice"),
        ("bad/name", "must start with a letter or digit"),
    ],
)
def test_bad_queue_lists_are_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        QueuePlan.parse(spec)
