"""The ``mina`` command groups, one module each; `mina.cli` assembles them."""
