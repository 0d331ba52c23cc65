"""The Pulsar transport: the client, producers, admin API, topic names; no feature.

Also the mechanisms built on topics that features use: marks and key locks on compacted topics,
how long topics keep messages, the schema registry.
"""
