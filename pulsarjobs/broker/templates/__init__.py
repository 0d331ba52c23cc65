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


def merged(*texts: str) -> str:
    """Config texts joined, each key kept once with its last value. java.util.Properties (the
    broker) keeps a repeated key's last value, but BookKeeper's configuration reads it as a
    list and uses the FIRST: an override appended below a template's line would be ignored."""
    lines = "\n".join(texts).splitlines()
    last = {key_of(line): n for n, line in enumerate(lines) if key_of(line)}
    return "\n".join(line for n, line in enumerate(lines) if last.get(key_of(line), n) == n) + "\n"


def key_of(line: str) -> str:
    """The key a KEY=VALUE line sets; "" for comments and blank lines."""
    if line.lstrip().startswith("#") or "=" not in line:
        return ""
    return line.split("=", 1)[0].strip()
