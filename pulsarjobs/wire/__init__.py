"""The wire format: what the job, result and small-record topics carry, and its codecs."""
