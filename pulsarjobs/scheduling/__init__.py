"""Periodic jobs: cron lines, their declaration on the App, the scheduler, their status.

`cron` parses lines and finds due ticks, `periodic` is the App's `@app.periodic`, `scheduler`
enqueues each tick once, `schedules` is what operators see of them.
"""
