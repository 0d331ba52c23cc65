"""A Django project of one app, `shop`, that enqueues jobs (docs/frameworks.md)."""
