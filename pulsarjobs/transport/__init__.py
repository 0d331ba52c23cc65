"""The Pulsar transport: the client and its producers, the admin API, topic names,
and the mechanisms built on topics (marks, key locks). It imports no feature."""
