"""The limit a worker is measured against: receive, decode the envelope, acknowledge."""

from __future__ import annotations

import os
import sys

import pulsar

from pulsarjobs.envelope import decode


def main(topic: str, subscription: str) -> None:
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
            decode(message.data())
            consumer.acknowledge(message)
    finally:
        client.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
