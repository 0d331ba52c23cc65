"""Text templates the launcher fills in: broker config, logging config, Maven files."""

from importlib import resources
from string import Template


def render(name: str, **values: str) -> str:
    text = resources.files(__package__).joinpath(name).read_text()
    return Template(text).substitute(values)
