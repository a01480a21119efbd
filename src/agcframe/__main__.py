"""``python -m agcframe``."""

from .cli import command

command()
