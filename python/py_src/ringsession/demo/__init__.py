"""The demo: the original Tornado session article's login app, made safe.

Run it with ``python -m ringsession.demo`` (``--help`` lists the options), or build the application
in a test or another program with `make_app`.
"""

from .app import make_app

__all__ = ["make_app"]
