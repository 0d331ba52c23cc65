"""Operations: what operators ask of the broker and do to it, for the CLI and the dashboard.

The Inspector, browsing queues, dead letters and their replay, retention, pauses, cancels,
commands to workers, flow reports.
"""
