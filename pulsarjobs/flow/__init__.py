"""Flow control (docs/flow-control.md): unique jobs, ordered jobs, concurrency and rate
limits."""
