"""The worker: fetching jobs, running them and settling them with the broker, and what a
running worker tells about itself."""
