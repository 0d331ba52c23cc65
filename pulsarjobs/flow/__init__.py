"""Flow control (docs/flow-control.md): unique jobs, concurrency limits and rate limits.

Ordered jobs are a feed of the worker's (worker/_ordering.py); the worker's side of unique keys
and limits is worker/_flow_control.py.
"""
