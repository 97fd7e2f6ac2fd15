"""The demo application: the article's login app on ringsession, and `make_app` to build it."""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import tornado.web

from ..mixin import BaseHandler
from ..stores.base import SessionStore, UserIndexStore
from ..stores.memory import MemoryStore
from ..stores.sharded import ShardedStore

__all__ = [
    "DemoHandler",
    "IndexHandler",
    "LoginHandler",
    "LogoutEverywhereHandler",
    "LogoutHandler",
    "make_app",
]

TEMPLATE_PATH = os.path.join(os.path.dirname(__file__), "templates")
"""The demo's templates (package data)."""

_SETTINGS_KEY = "ringsession_demo"


@dataclass(frozen=True)
class _Demo:
    """What the demo's handlers need besides Tornado's settings."""

    user: str
    password: str
    store_name: str
    links: tuple[tuple[str, str], ...]


def _same(given: str, expected: str) -> bool:
    """Compares credentials in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())


class DemoHandler(BaseHandler):
    """Base of the demo's pages: the user is whoever the session says."""

    @property
    def demo(self) -> _Demo:
        """The demo's account and page settings."""
        return cast(_Demo, self.settings[_SETTINGS_KEY])

    def get_current_user(self) -> str | None:
        """The name stored in the session at login, if any."""
        user = self.session.get("user")
        return user if isinstance(user, str) else None

    def get_template_namespace(self) -> dict[str, Any]:
        """Tornado's template namespace plus the store's name and the extra nav links."""
        namespace = super().get_template_namespace()
        namespace.update(store_name=self.demo.store_name, links=self.demo.links)
        return namespace


class LoginHandler(DemoHandler):
    """``GET /login``: the form; ``POST /login``: checks ``name`` and ``pwd``."""

    def get(self) -> None:
        """Shows the form, or goes to /index when already logged in."""
        if self.current_user:
            self.redirect("/index")
            return
        self.render("login.html", error=None, name="")

    def post(self) -> None:
        """Logs in with a new session id (`Session.regenerate`), bound to the user
        (`Session.bind_user`, for "log out everywhere"), or shows the form again."""
        name = self.get_body_argument("name", "")
        pwd = self.get_body_argument("pwd", "")
        # Both comparisons always run, so timing tells nothing about which part was wrong.
        if _same(name, self.demo.user) & _same(pwd, self.demo.password):
            self.session.regenerate()
            self.session.bind_user(name)
            self.session["user"] = name
            self.session["visits"] = 0
            self.redirect("/index")
            return
        self.render("login.html", error="Wrong name or password.", name=name)


class IndexHandler(DemoHandler):
    """``GET /index``: the logged-in user and a visit counter kept in the session."""

    def get(self) -> None:
        """Counts the visit, or goes to /login when not logged in."""
        if not self.current_user:
            self.redirect("/login")
            return
        visits = self.session.get("visits")
        visits = (visits if isinstance(visits, int) else 0) + 1
        self.session["visits"] = visits
        # A sharded store names the shard of a session (a wrapper of one may, too).
        node_for = getattr(self.get_session_store(), "node_for", None)
        sid = self.session.id
        node = node_for(sid) if node_for is not None and sid else None
        self.render("index.html", visits=visits, node=node)


class LogoutHandler(DemoHandler):
    """``GET /logout``: ends the session (`Session.destroy`) and goes to /login."""

    def get(self) -> None:
        """Destroys the session."""
        self.session.destroy()
        self.redirect("/login")


class LogoutEverywhereHandler(DemoHandler):
    """``POST /logout-everywhere``: ends every session of the user, this one included."""

    async def post(self) -> None:
        """Destroys the user's sessions in the store (`destroy_user_sessions`), then this one."""
        store = self.get_session_store()
        if self.current_user and isinstance(store, UserIndexStore):
            await store.destroy_user_sessions(self.current_user)
        self.session.destroy()
        self.redirect("/login")


def _store_name(store: SessionStore) -> str:
    if isinstance(store, MemoryStore):
        return "this process's memory"
    if isinstance(store, ShardedStore):
        nodes = ", ".join(store.stores)
        return f"{len(store.stores)} shard(s) chosen by the hash ring ({nodes})"
    return type(store).__name__


def make_app(
    *,
    cookie_secret: str,
    password: str,
    user: str = "demo",
    store: SessionStore | None = None,
    session_settings: Mapping[str, Any] | None = None,
    handlers: Sequence[Any] = (),
    links: Sequence[tuple[str, str]] = (),
    **settings: Any,
) -> tornado.web.Application:
    """The demo application.

    Args:
        cookie_secret: Signs the session and XSRF cookies.
        password: The password of the demo account.
        user: The name of the demo account.
        store: Where sessions live; default: a new `MemoryStore`.
        session_settings: More of the ``session`` setting (timeouts, cookie options...).
        handlers: More routes, served next to the demo's (the ``/ring`` page, say).
        links: ``(path, label)`` pairs added to the navigation of the logged-in page.
        **settings: More Tornado application settings (``debug``, ``static_path``...).

    Returns:
        The application, with XSRF protection on.
    """
    if store is None:
        store = MemoryStore()
    routes: list[Any] = [
        (r"/", tornado.web.RedirectHandler, {"url": "/index"}),
        (r"/login", LoginHandler),
        (r"/index", IndexHandler),
        (r"/logout", LogoutHandler),
        (r"/logout-everywhere", LogoutEverywhereHandler),
        *handlers,
    ]
    demo = _Demo(user=user, password=password, store_name=_store_name(store), links=tuple(links))
    app_settings: dict[str, Any] = {
        "cookie_secret": cookie_secret,
        "xsrf_cookies": True,
        "xsrf_cookie_kwargs": {"httponly": True, "samesite": "Lax"},
        "template_path": TEMPLATE_PATH,
        "login_url": "/login",
        "session": {**(session_settings or {}), "store": store},
        _SETTINGS_KEY: demo,
        **settings,
    }
    return tornado.web.Application(routes, **app_settings)
