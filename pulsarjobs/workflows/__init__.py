"""Workflows (docs/workflows.md): results to wait for, chains and batches of jobs."""
