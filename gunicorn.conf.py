"""gunicorn's default configuration file: Mina's gunicorn settings (`mina.gunicorn_conf`).

gunicorn reads ``./gunicorn.conf.py`` when started without ``--config``, so the Quick
Start's ``gunicorn --bind 0.0.0.0:5000 --reload main:app`` gets Mina's JSON logging, worker
class and the one-line stop on bad settings. Options given on the command line (here
``--bind``) still win over these. Not part of the installed package.
"""

# gunicorn takes the names it knows as settings (bind, workers, logger_class, ...) and
# ignores the rest of the module's names.
from mina.gunicorn_conf import *  # noqa: F403
