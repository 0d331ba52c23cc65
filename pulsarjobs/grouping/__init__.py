"""Grouped jobs (aggregation): members enqueued one by one, handed to one run as a list."""
