"""The limit a worker is measured against: receive, decode the envelope, acknowledge.

With `--record`, it also stamps each job's first argument (the send time) like the handlers of
the latency benchmark do.
"""

from __future__ import annotations

import argparse
import os

import pulsar

from bench.record import stamp
from pulsarjobs.wire.envelope import decode


def main(topic: str, subscription: str, record: bool) -> None:
    client = pulsar.Client(
        os.environ["PULSARJOBS_SERVICE_URL"], logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn)
    )
    consumer = client.subscribe(
        topic,
        subscription,
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
    )
    try:
        while True:
            message = consumer.receive()
            envelope = decode(message.data())
            if record:
                stamp(envelope.args[0])
            consumer.acknowledge(message)
    finally:
        client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("topic")
    parser.add_argument("subscription")
    parser.add_argument("--record", action="store_true")
    options = parser.parse_args()
    main(options.topic, options.subscription, options.record)
