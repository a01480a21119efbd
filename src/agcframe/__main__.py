"""``python -m agcframe``."""

from agcframe.cli import command

command()
