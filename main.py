"""The Quick Start's entry point: ``gunicorn --bind 0.0.0.0:5000 --reload main:app``.

gunicorn reads ``./gunicorn.conf.py`` (Mina's gunicorn settings) from the working
directory by itself; this module reads ``.env`` and builds the app. It lives outside the
``mina`` package and is not installed with it: it is for running from a checkout.
"""

from mina import create_app
from mina.envfile import load_env_file

load_env_file()  # for servers other than gunicorn; already done by gunicorn.conf.py
app = create_app()
