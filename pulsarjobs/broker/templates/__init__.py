"""Text templates the launcher fills in: broker, bookie and ZooKeeper configs, logging config,
Maven files. `jobs-broker.conf` and `jobs-bookie.conf` are the one home of the settings
pulsarjobs needs of any broker and bookie; every config the launcher writes includes them."""

from importlib import resources
from string import Template


def render(name: str, **values: str) -> str:
    text = resources.files(__package__).joinpath(name).read_text()
    return Template(text).substitute(values)


def properties(name: str) -> dict[str, str]:
    """The KEY=VALUE lines of a template (placeholders left as they are)."""
    text = resources.files(__package__).joinpath(name).read_text()
    lines = Template(text).safe_substitute().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}
