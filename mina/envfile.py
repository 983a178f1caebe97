"""The ``.env`` file, read as Flask's command line reads it: once, the environment winning.

`load_env_file` finds the nearest ``.env`` (the working directory, then its parents, as
``flask run`` does with python-dotenv) and adds its variables to `os.environ`, except those
already set: the real environment always wins over the file. Mina's entry points call it
before reading any setting (``mina.gunicorn_conf`` in gunicorn's master, the ``mina``
command, the Quick Start's ``main.py``); the application factory does not, so an app
built in tests or by another server sees only the environment it is given.
`loaded_env_file` says which file was read, for the start-up line.
"""

from __future__ import annotations

import threading
from pathlib import Path

import dotenv

__all__ = ["load_env_file", "loaded_env_file"]

_lock = threading.Lock()
_done = False
_path: Path | None = None


def load_env_file() -> Path | None:
    """Load the nearest ``.env`` into `os.environ` once per process; return its path.

    Returns None when there is no such file. Later calls return the first call's answer
    without reading again (a process forked after the first call inherits it).
    """
    global _done, _path
    with _lock:
        if not _done:
            found = dotenv.find_dotenv(".env", usecwd=True)
            if found:
                dotenv.load_dotenv(found, override=False, encoding="utf-8")
                _path = Path(found)
            _done = True
        return _path


def loaded_env_file() -> Path | None:
    """The ``.env`` file this process read, or None (none found, or none looked for)."""
    return _path
