"""``python -m mina``: the same command line as ``mina``."""

from mina.cli import main

main(prog_name="mina")
