"""``python -m agcframe``."""

from .cli import main

main(prog_name="agcframe")
