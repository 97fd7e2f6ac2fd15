"""The Tornado application and the spying store that the session tests share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import tornado.template
import tornado.web
from conftest import COOKIE_SECRET

from ringsession import BaseHandler, MemoryStore, SessionMixin, SessionStore, StoreError

# ---- a store that records what it is asked, and can be slow or fail -----------------------------


class Spy:
    """Wraps a store: records every call; can delay or fail the saves and loads."""

    def __init__(
        self,
        inner: SessionStore | None = None,
        *,
        save_delay: float = 0,
        fail: set[str] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.inner = inner if inner is not None else MemoryStore()
        self.calls: list[tuple[Any, ...]] = []
        self.save_delay = save_delay
        self.fail = fail or set()
        self.error = error or StoreError("store down (test)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ops(self) -> list[str]:
        return [c[0] for c in self.calls]

    def _maybe_fail(self, op: str) -> None:
        if op in self.fail:
            raise self.error

    async def load(self, sid: str) -> dict[str, Any] | None:
        self.calls.append(("load", sid))
        self._maybe_fail("load")
        return await self.inner.load(sid)

    async def save(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        self.calls.append(("save", sid, dict(changed), set(deleted), ttl))
        if self.save_delay:
            await asyncio.sleep(self.save_delay)
        self._maybe_fail("save")
        await self.inner.save(sid, changed, deleted, ttl)

    async def delete(self, sid: str) -> None:
        self.calls.append(("delete", sid))
        self._maybe_fail("delete")
        await self.inner.delete(sid)

    async def touch(self, sid: str, ttl: float) -> bool:
        self.calls.append(("touch", sid))
        return await self.inner.touch(sid, ttl)


# ---- the test application -----------------------------------------------------------------------


class Count(BaseHandler):
    def get(self) -> None:
        visits = self.session.get("visits", 0)
        assert isinstance(visits, int)
        self.session["visits"] = visits + 1
        self.write(f"visits={visits + 1}")


class Read(BaseHandler):
    def get(self) -> None:
        self.write(f"user={self.session.get('user')}")


class Dump(BaseHandler):
    def get(self) -> None:
        self.write(dict(self.session))


class Plain(BaseHandler):
    """Uses the mixin but never looks at the session."""

    def get(self) -> None:
        self.write("plain")


class Ping(tornado.web.RequestHandler):
    """Unrelated to sessions."""

    def get(self) -> None:
        self.write("pong")


class Login(BaseHandler):
    def get(self) -> None:
        self.session.regenerate()
        self.session["user"] = self.get_argument("user")
        self.redirect("/read")


class Logout(BaseHandler):
    def get(self) -> None:
        self.session.destroy()
        self.redirect("/read")


class RenderLogin(BaseHandler):
    def get(self) -> None:
        self.session["user"] = self.get_argument("user")
        self.render("page.html", user=self.get_argument("user"))


class FinishLogin(BaseHandler):
    async def get(self) -> None:
        self.session["user"] = self.get_argument("user")
        await self.finish("done")


class FlushLogin(BaseHandler):
    async def get(self) -> None:
        self.session["user"] = self.get_argument("user")
        self.write("part 1;")
        await self.flush()
        self.write("part 2")


class Set(BaseHandler):
    async def get(self) -> None:
        await asyncio.sleep(float(self.get_argument("delay", "0")))
        self.session[self.get_argument("k")] = self.get_argument("v")
        self.write("ok")


class Forbidden(BaseHandler):
    def get(self) -> None:
        self.session["user"] = self.get_argument("user", "x")
        raise tornado.web.HTTPError(403)


class Crash(BaseHandler):
    def get(self) -> None:
        self.session["user"] = "x"
        raise RuntimeError("boom")


class BadValue(BaseHandler):
    def get(self) -> None:
        self.session["when"] = time.gmtime()  # type: ignore[assignment]


class EarlyAccess(SessionMixin, tornado.web.RequestHandler):
    async def prepare(self) -> None:
        self.session.get("user")
        await super().prepare()

    def get(self) -> None:
        self.write("unreachable")


ROUTES: list[Any] = [
    (r"/count", Count),
    (r"/read", Read),
    (r"/dump", Dump),
    (r"/plain", Plain),
    (r"/ping", Ping),
    (r"/login", Login),
    (r"/logout", Logout),
    (r"/render-login", RenderLogin),
    (r"/finish-login", FinishLogin),
    (r"/flush-login", FlushLogin),
    (r"/set", Set),
    (r"/forbidden", Forbidden),
    (r"/crash", Crash),
    (r"/bad-value", BadValue),
    (r"/early", EarlyAccess),
]


def make_app(store: SessionStore | None = None, **session: Any) -> tornado.web.Application:
    settings: dict[str, Any] = dict(session)
    if store is not None:
        settings["store"] = store
    return tornado.web.Application(
        ROUTES,
        cookie_secret=COOKIE_SECRET,
        session=settings,
        template_loader=tornado.template.DictLoader({"page.html": "user={{ user }}"}),
    )
