"""Periodic jobs: cron lines, their declaration on the App, the scheduler that enqueues
their ticks, and their status for operators."""
