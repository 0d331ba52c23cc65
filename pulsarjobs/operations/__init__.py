"""Operations: what operators ask of the broker and do to it — the Inspector, browsing
queues, dead letters and their replay, retention, pauses, cancels, commands to workers."""
