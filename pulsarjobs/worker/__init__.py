"""The worker: fetching jobs, running them, settling them with the broker, and its presence.

Modules named with a leading underscore are used only inside this package.
"""
