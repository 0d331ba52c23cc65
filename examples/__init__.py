"""Example jobs and the demo the README's run command shows."""
