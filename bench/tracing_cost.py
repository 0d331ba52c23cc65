"""What OpenTelemetry tracing adds to each job: the hook a worker calls around every run, timed.

    python -m bench.tracing_cost [--number 200000]

A worker enters `app.hooks.around_process(envelope)` around each run while a middleware
listens to a run's hooks (with none listening, a run calls no hook at all). Timed here with the
app's hooks as they are without the `otel` extra (logging only), with the extra but no tracer
provider set, and with the SDK's provider (spans recorded, exported nowhere); and an enqueue's
`before_enqueue` with the SDK. The SDK's numbers are the SDK's cost: span, context, propagator.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from pulsarjobs.logs import LoggingMiddleware
from pulsarjobs.middleware import Hooks
from pulsarjobs.tracing import Tracing
from pulsarjobs.wire.envelope import Envelope

ENVELOPE = Envelope(id="0123456789abcdef0123456789abcdef", type="noop", queue="default")


def around(hooks: Hooks) -> Callable[[], None]:
    def run() -> None:
        with hooks.around_process(ENVELOPE):
            pass

    return run


def best_us(call: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=200_000)
    number = parser.parse_args().number
    tracing = Tracing()
    timings = {
        "a run, without the extra": best_us(around(Hooks([LoggingMiddleware()])), number),
        "a run, extra, no provider": best_us(around(Hooks([LoggingMiddleware(), tracing])), number),
    }
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    tracing.recording = True  # as a worker starting now would find
    few = max(1, number // 10)
    timings["a run, SDK"] = best_us(around(Hooks([LoggingMiddleware(), tracing])), few)
    timings["an enqueue's hook, SDK"] = best_us(lambda: tracing.before_enqueue(ENVELOPE), few)
    print(", ".join(f"{name} {value:.2f} µs" for name, value in timings.items()))


if __name__ == "__main__":
    main()
