"""Server-side sessions for Tornado: `SessionMixin` and `BaseHandler`.

Example:
    A page that counts a visitor's visits (run it and open http://127.0.0.1:8888/)::

        import asyncio

        import tornado.web

        from ringsession import SessionMixin


        class CounterHandler(SessionMixin, tornado.web.RequestHandler):
            def get(self) -> None:
                visits = self.session.get("visits", 0) + 1
                self.session["visits"] = visits
                self.write(f"visit number {visits}")


        async def main() -> None:
            app = tornado.web.Application(
                [(r"/", CounterHandler)],
                cookie_secret="a long random string, the same in every process",
                session={"idle_timeout": 1800},  # optional: the defaults suit most apps
            )
            app.listen(8888)
            await asyncio.Event().wait()


        asyncio.run(main())

`SessionMixin` loads the session in `prepare()` and saves it before the response leaves, so
``self.redirect()``, ``self.render()``, ``self.finish()`` and error pages all work as usual and the
next request always sees the change. Configure it with the application setting ``session``, a
dict with these keys (all optional):

- ``store``: a `SessionStore` (`MemoryStore`, `RedisStore`, `ShardedRedisStore`...). Default: one
  `MemoryStore` shared by the whole process.
- ``cookie_name``: default ``"session_id"``.
- ``idle_timeout``: seconds (or a `datetime.timedelta`) without a request after which a session
  ends. Default 30 minutes.
- ``absolute_timeout``: seconds (or a `datetime.timedelta`) after its creation (or its last
  `Session.regenerate`) at which a session ends however busy; None for no limit. Default 12 hours.
- ``cookie_options``: keyword arguments for `RequestHandler.set_cookie` that override the
  defaults ``httponly=True, samesite="Lax", path="/"`` and ``secure`` (True when the request came
  over HTTPS), for example ``{"domain": "example.com", "expires_days": 30}``. By default the cookie
  lasts until the browser closes.
- ``on_store_error``: ``"503"`` (default) answers 503 when the store holding a request's session
  cannot be reached; ``"fresh"`` goes on with a new, empty session instead. A save that fails is
  always an error response.
- ``max_bytes``: the largest session record, in bytes (each key and its JSON value, metadata
  included); None for no limit. Default 64 KB. A save that would go past it is refused before
  anything is written (`SessionTooLarge`): the response is a 500 and the stored session stays as
  it was.

The application must have a ``cookie_secret``: the cookie holding the session id is signed.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import logging
import re
import secrets
import time
import types
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from tornado.concurrent import Future, chain_future
from tornado.httputil import HTTPHeaders, HTTPServerRequest, parse_cookie
from tornado.web import Application, HTTPError, RequestHandler, decode_signed_value

from .session import Session, is_session_id
from .stores.base import CorruptRecord, SessionStore, StoreError, UserIndexStore, now_ms
from .stores.memory import MemoryStore

__all__ = ["BaseHandler", "SessionMixin"]

logger = logging.getLogger("ringsession")

_SETTING_KEYS = frozenset(
    {
        "store",
        "cookie_name",
        "idle_timeout",
        "absolute_timeout",
        "cookie_options",
        "on_store_error",
        "max_bytes",
    }
)
_DEFAULT_MAX_BYTES = 64 * 1024
_DEFAULT_IDLE_TIMEOUT = 30 * 60.0
_DEFAULT_ABSOLUTE_TIMEOUT = 12 * 3600.0
# The signed cookie's own age limit backs up the store's timeouts: the absolute timeout plus a
# margin (its timestamp has whole seconds), or this many days without an absolute timeout.
_MAX_COOKIE_AGE_DAYS = 366.0
_COOKIE_AGE_SLACK = 60.0

# Session ids are bearer tokens and never go to a log: log lines name a session by a keyed hash
# whose key lives only in this process.
_LOG_SALT = secrets.token_bytes(16)

# Strong references to running save tasks (the event loop keeps only weak ones).
_TASKS: set[asyncio.Future[Any]] = set()

_T = TypeVar("_T")

_default_store: MemoryStore | None = None

_CONFIGS: dict[tuple[int, int], tuple[Mapping[str, Any], SessionStore, _Config]] = {}
_MAX_CONFIGS = 64


def _process_store() -> MemoryStore:
    """The process-wide `MemoryStore` used when the settings name no store."""
    global _default_store
    if _default_store is None:
        _default_store = MemoryStore()
    return _default_store


def _store_in(settings: Mapping[str, Any]) -> SessionStore:
    """The ``store`` of the session settings, or the process-wide `MemoryStore`."""
    store: SessionStore | None = settings.get("store")
    return store if store is not None else _process_store()


def session_tag(sid: str) -> str:
    """A short name for a session id, for logs: a hash keyed with a per-process secret."""
    return hashlib.blake2b(sid.encode(), key=_LOG_SALT, digest_size=5).hexdigest()


@types.coroutine
def _resume(coro: Coroutine[Any, Any, _T], yielded: Any) -> Generator[Any, Any, _T]:
    """Runs the rest of `coro`, whose first step yielded `yielded`, as ``await coro`` would."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return cast(_T, stop.value)
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return cast(_T, stop.value)


async def _rest(coro: Coroutine[Any, Any, _T], yielded: Any) -> _T:
    return await _resume(coro, yielded)


def _start(coro: Coroutine[Any, Any, _T]) -> tuple[bool, Any]:
    """Runs `coro` at once, up to its first wait, as Python 3.12's eager tasks do.

    Returns ``(True, result)`` when it finished without waiting (the `MemoryStore` never waits),
    so that a save costs no task and no turn of the event loop; otherwise ``(False, task)``, the
    task running the rest. An exception raised before the first wait propagates.
    """
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    task: asyncio.Future[_T] = asyncio.ensure_future(_rest(coro, yielded))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return False, task


def _resolve(result: Future[None], quiet: bool, task: asyncio.Future[Future[None] | None]) -> None:
    """Passes the outcome of a save-then-send task on to the Future given to the caller."""
    if task.cancelled():
        result.cancel()
        return
    exc = task.exception()
    if exc is not None:
        if quiet:  # finish(): the connection went away while saving, say
            logger.debug("finish() after the session save failed: %s", exc)
            result.set_result(None)
        else:
            result.set_exception(exc)
            # finish() reports the failure too, so a flush() that nobody awaits is no error.
            result.add_done_callback(lambda f: f.exception())
        return
    sent = task.result()
    if sent is None:
        result.set_result(None)
    else:
        chain_future(sent, result)


async def _index(
    store: SessionStore, sid: str, user_id: str, created_ms: int, deadline_ms: int | None
) -> None:
    """Adds the session `sid` to the index of `user_id` in `store`."""
    if not isinstance(store, UserIndexStore):
        raise TypeError(
            f"Session.bind_user needs a store with a user index (UserIndexStore): "
            f"{type(store).__name__} has none"
        )
    await store.index_user_session(user_id, sid, created_ms, deadline_ms)


def _seconds(settings: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = settings.get(key, default)
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"session setting {key!r} must be a positive number of seconds")
    return float(value)


_NO_SETTINGS: Mapping[str, Any] = types.MappingProxyType({})

# Checking a signed cookie (HMAC-SHA256 and parsing) is the largest cost of loading a session,
# and a browser sends the same Cookie header again and again: remember the headers whose session
# cookie passed, with the time it was signed at, so that only its age is checked again.
_VERIFIED: dict[tuple[Any, str, str], tuple[str, int]] = {}
_MAX_VERIFIED = 4096
_MAX_VERIFIED_HEADER = 1024


def _verified_id(
    secret: Any, name: str, header: str, pattern: re.Pattern[str], max_age_days: float
) -> str | None:
    """The session id in the cookie `name` of the Cookie header `header`, if that cookie is there
    and valid (what get_signed_cookie checks); "" if the header has no such cookie."""
    # Only short headers are remembered: a client could otherwise fill the cache with long ones
    # (every one holding the same valid cookie).
    key = (
        (secret, name, header)
        if len(header) <= _MAX_VERIFIED_HEADER and isinstance(secret, (str, bytes))
        else None
    )
    if key is not None:
        hit = _VERIFIED.get(key)
        if hit is not None:
            cached, signed_at = hit
            return cached if signed_at >= time.time() - max_age_days * 86400 else None
    # request.cookies would build an http.cookies.SimpleCookie, and even parse_cookie (what it
    # parses the header with) costs more than the whole session load: read only our cookie.
    raw = _cookie_value(header, pattern, name)
    if raw is None:
        return ""
    value = decode_signed_value(secret, name, raw, max_age_days=max_age_days, min_version=2)
    sid = value.decode("ascii", "replace") if value is not None else None
    if sid is None or not is_session_id(sid):
        return None
    if key is not None:
        # A valid version 2 value starts "2|1:<key version>|<n>:<timestamp>|".
        signed_at = int(raw.split("|", 3)[2].split(":", 1)[1])
        if len(_VERIFIED) >= _MAX_VERIFIED:
            _VERIFIED.clear()  # atomic, so safe with IOLoops in several threads
        _VERIFIED[key] = (sid, signed_at)
    return sid


# The names that http.cookies (and so RequestHandler.set_cookie) accepts for a cookie.
_COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~:]+")


def _cookie_pattern(name: str) -> re.Pattern[str]:
    """Finds the cookie `name` in a Cookie header as `parse_cookie` does: a chunk between
    semicolons whose text before its first "=" is `name` within whitespace (``\\s`` is what
    `str.strip` removes); group 1 is the rest of the chunk."""
    return re.compile(r"(?:^|;)\s*" + re.escape(name) + r"\s*=([^;]*)")


def _cookie_value(header: str, pattern: re.Pattern[str], name: str) -> str | None:
    """``parse_cookie(header).get(name)``, without parsing the other cookies of the header."""
    found = pattern.findall(header)
    if not found:
        return None
    value: str = found[-1].strip()  # the last one wins, as in parse_cookie's dict
    if len(value) >= 2 and value[0] == '"' == value[-1]:
        if "\\" in value:  # escapes: let Tornado's own unquoting handle them
            return parse_cookie(header).get(name)
        value = value[1:-1]
    return value


def _config(settings: Mapping[str, Any], store: SessionStore) -> _Config:
    """The checked settings; parsed once per settings object and store (the last few kept)."""
    key = (id(settings), id(store))
    cached = _CONFIGS.get(key)
    if cached is not None and cached[0] is settings and cached[1] is store:
        return cached[2]
    config = _Config.parse(settings, store)
    if len(_CONFIGS) >= _MAX_CONFIGS:
        _CONFIGS.clear()
    # The entry holds the settings and the store, so that their ids cannot be reused meanwhile.
    _CONFIGS[key] = (settings, store, config)
    return config


@dataclass(frozen=True)
class _Config:
    """The `session` application setting, checked."""

    store: SessionStore
    cookie_name: str
    cookie_pattern: re.Pattern[str]
    idle_ms: int
    absolute_ms: int | None
    cookie_options: Mapping[str, Any]
    fresh_on_store_error: bool
    cookie_max_age_days: float
    max_bytes: int | None
    # The store's optional immediate forms of load and save (see SessionStore), or None.
    load_nowait: Callable[[str], dict[str, Any] | None] | None
    save_nowait: Callable[[str, Mapping[str, Any], set[str], float], None] | None

    @classmethod
    def parse(cls, settings: Mapping[str, Any], store: SessionStore) -> _Config:
        unknown = set(settings) - _SETTING_KEYS
        if unknown:
            raise ValueError(
                f"unknown session settings {sorted(unknown)}; known: {sorted(_SETTING_KEYS)}"
            )
        idle = _seconds(settings, "idle_timeout", _DEFAULT_IDLE_TIMEOUT)
        if idle is None:
            raise ValueError("session setting 'idle_timeout' must be a positive number of seconds")
        absolute = _seconds(settings, "absolute_timeout", _DEFAULT_ABSOLUTE_TIMEOUT)
        on_error = settings.get("on_store_error", "503")
        if on_error not in ("503", "fresh"):
            raise ValueError(
                f"session setting 'on_store_error' is '503' or 'fresh', not {on_error!r}"
            )
        max_bytes = settings.get("max_bytes", _DEFAULT_MAX_BYTES)
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0
        ):
            raise ValueError(
                f"session setting 'max_bytes' must be a positive int or None, not {max_bytes!r}"
            )
        cookie_name = settings.get("cookie_name", "session_id")
        if not isinstance(cookie_name, str) or not _COOKIE_NAME.fullmatch(cookie_name):
            raise ValueError(
                "session setting 'cookie_name' must be a non-empty str of the characters "
                f"allowed in cookie names, not {cookie_name!r}"
            )
        return cls(
            store=store,
            cookie_name=cookie_name,
            cookie_pattern=_cookie_pattern(cookie_name),
            idle_ms=max(1, round(idle * 1000)),
            absolute_ms=None if absolute is None else max(1, round(absolute * 1000)),
            cookie_options=dict(settings.get("cookie_options") or {}),
            fresh_on_store_error=on_error == "fresh",
            cookie_max_age_days=(
                _MAX_COOKIE_AGE_DAYS if absolute is None else (absolute + _COOKIE_AGE_SLACK) / 86400
            ),
            max_bytes=max_bytes,
            load_nowait=_nowait(store, "load"),
            save_nowait=_nowait(store, "save"),
        )


def _nowait(store: SessionStore, name: str) -> Any:
    """The store's method ``{name}_nowait``, if its class defines it next to ``{name}``.

    Only then is it the same operation: a subclass that overrides ``load`` but not
    ``load_nowait``, or a wrapper that forwards attributes to a store, must be called through
    its own coroutine.
    """

    def owner(attribute: str) -> type | None:
        return next((c for c in type(store).__mro__ if attribute in vars(c)), None)

    defined = owner(name + "_nowait")
    if defined is None or defined is not owner(name):
        return None
    return getattr(store, name + "_nowait")


class SessionMixin:
    """Gives a `tornado.web.RequestHandler` a server-side session, ``self.session``.

    List it before `RequestHandler` (``class H(SessionMixin, RequestHandler)``): it overrides
    ``prepare``, ``flush``, ``finish`` and ``send_error`` and calls ``super()`` in each. A subclass
    that overrides ``prepare`` must call (and await) ``super().prepare()`` before it uses the
    session. See the module documentation for the settings.

    What a request costs: none of the store calls when it has no valid session cookie; one load
    (which also restarts the idle timer) when it has one; one more call, a save of the changed and
    deleted keys only, when it changed the session. A session that is never written is never
    stored. A response with a status of 500 or more saves nothing.
    """

    _SESSION_SETTINGS_KEY = "session"

    # Per-request state. The class attributes are the defaults; a request assigns its own.
    _session_obj: Session | None = None
    _session_cfg: _Config | None = None
    _session_accessed = False
    _session_headers_sent = False
    _session_error: Exception | None = None
    _session_commit_task: asyncio.Future[None] | None = None
    _session_finishing: Future[None] | None = None

    if TYPE_CHECKING:
        # What the hot paths use of the RequestHandler the mixin is part of, declared rather than
        # reached through cast(RequestHandler, self), a call on every use.
        application: Application
        request: HTTPServerRequest
        _headers: HTTPHeaders
        _status_code: int

    # ---- hooks ----------------------------------------------------------------------------------

    def get_session_settings(self) -> Mapping[str, Any]:
        """The session settings; by default the application setting ``session`` (or none).

        Override it to configure sessions per handler. The settings are read once per settings
        object (and store): return the same dict each time, and change it only before use.
        """
        settings: Mapping[str, Any] | None = self.application.settings.get(
            self._SESSION_SETTINGS_KEY
        )
        return settings if settings is not None else _NO_SETTINGS

    def get_session_store(self) -> SessionStore:
        """The store of this request's session; by default the ``store`` setting.

        Without one, every application of the process shares one `MemoryStore`.
        """
        return _store_in(self.get_session_settings())

    # ---- the session ----------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The session of the current request, loaded by `prepare`.

        Raises:
            RuntimeError: Used before `prepare` loaded it (a ``prepare`` override that did not
                call ``super().prepare()`` first, or a mixin listed after `RequestHandler`).
        """
        session = self._session_obj
        if session is None:
            raise RuntimeError(
                "the session is loaded by SessionMixin.prepare(): list SessionMixin before "
                "RequestHandler, and await super().prepare() before using self.session"
            )
        self._session_accessed = True
        return session

    def _session_config(self) -> _Config:
        config = self._session_cfg
        if config is None:
            settings = self.get_session_settings()
            if type(self).get_session_store is SessionMixin.get_session_store:
                store = _store_in(settings)  # what the hook returns, without a second lookup
            else:
                store = self.get_session_store()
            config = self._session_cfg = _config(settings, store)
        return config

    async def prepare(self) -> None:
        """Loads the session (no store call unless the request has a valid session cookie)."""
        secret = self.application.settings.get("cookie_secret")
        if not secret:
            cast(RequestHandler, self).require_setting("cookie_secret", "sessions")
        config = self._session_config()
        session: Session | None = None
        sid = self._session_read_cookie(config, secret)
        if sid is not None:
            try:
                load_nowait = config.load_nowait
                if load_nowait is not None:
                    record = load_nowait(sid)
                else:
                    record = await config.store.load(sid)
            except CorruptRecord as exc:
                # Not the store's fault and not the client's: this one session is unusable.
                logger.error("session %s: %s", session_tag(sid), exc)
                raise HTTPError(500, "session record is corrupt") from None
            except StoreError as exc:
                logger.warning("session %s: load failed: %s", session_tag(sid), exc)
                if not config.fresh_on_store_error:
                    raise HTTPError(503, "session store unavailable") from None
            else:
                # The store reports only live records (SessionStore.load): it enforces the
                # timeouts, on its own clock.
                if record is not None:
                    session = Session._from_record(sid, record)
                else:
                    self._session_clear_cookie(config)
        self._session_obj = session if session is not None else Session()
        result = super().prepare()  # type: ignore[misc]
        if result is not None:
            await result

    def _session_read_cookie(self, config: _Config, secret: Any) -> str | None:
        """The session id in the request's cookie, if it is signed by us and well formed."""
        header = self.request.headers.get("Cookie")
        if header is None or config.cookie_name not in header:
            return None
        sid = _verified_id(
            secret, config.cookie_name, header, config.cookie_pattern, config.cookie_max_age_days
        )
        if sid is None:
            self._session_clear_cookie(config)
        return sid or None

    def _session_cookie_options(self, config: _Config) -> dict[str, Any]:
        handler = cast(RequestHandler, self)
        options: dict[str, Any] = {"httponly": True, "samesite": "Lax", "path": "/"}
        options.update(config.cookie_options)
        if options.get("secure") is None:
            options["secure"] = handler.request.protocol == "https"
        return options

    def _session_set_cookie(self, config: _Config, sid: str) -> None:
        handler = cast(RequestHandler, self)
        options = self._session_cookie_options(config)
        expires_days = options.pop("expires_days", None)
        set_signed = getattr(handler, "set_signed_cookie", None) or handler.set_secure_cookie
        set_signed(config.cookie_name, sid, expires_days=expires_days, **options)

    def _session_clear_cookie(self, config: _Config) -> None:
        handler = cast(RequestHandler, self)
        options = self._session_cookie_options(config)
        for key in ("expires", "expires_days", "max_age"):
            options.pop(key, None)
        try:
            handler.clear_cookie(config.cookie_name, **options)
        except TypeError:  # Tornado < 6.3 takes only path and domain
            handler.clear_cookie(
                config.cookie_name, path=options.get("path", "/"), domain=options.get("domain")
            )

    # ---- saving before the response leaves ------------------------------------------------------
    #
    # Tornado sends the response in finish() (or at the first flush()), which redirect(), render(),
    # send_error() and the end of the handler call synchronously and whose Future nobody needs to
    # await. So finish() and the first flush() start the save instead, return a Future at once,
    # and call Tornado's finish()/flush() once the save has completed. Meanwhile further finish()
    # calls get the same Future, and send_error() is a no-op, since the response is decided. A save
    # that fails turns the response into a 503 (store errors) or a 500.

    def _session_must_commit(self) -> bool:
        """Whether the response waits for a save (or for the error page of a failed one)."""
        session = self._session_obj
        if session is None:
            return False
        task = self._session_commit_task
        return (
            session._unsaved()
            or self._session_error is not None
            or (task is not None and not task.done())
        ) and self._status_code < 500

    async def _session_commit(self) -> None:
        """Carries out one save of the session: store calls, then the cookie."""
        session = self._session_obj
        assert session is not None, "prepare() made the session"
        config = self._session_cfg or self._session_config()
        current = None
        try:
            plan = session._plan(now_ms(), config.idle_ms, config.absolute_ms, config.max_bytes)
            if plan.new_id is not None and self._session_headers_sent:
                raise RuntimeError(
                    "a new session was written after the response headers were sent: "
                    "its cookie cannot be set (write the session before flush())"
                )
            if plan.save_id is not None:
                current = plan.save_id
                if plan.bind is not None:
                    # Indexed before the save binds it: a bound session is always in the index.
                    await _index(config.store, plan.save_id, *plan.bind)
                await config.store.save(
                    plan.save_id, plan.changed, plan.deleted, plan.ttl_ms / 1000
                )
            for old in plan.delete_ids:
                current = old
                await config.store.delete(old)
        except Exception as exc:
            self._session_save_failed(current, exc)
            raise
        session._committed(plan)
        if plan.new_id is not None:
            self._session_set_cookie(config, plan.new_id)
        elif plan.clear_cookie and not self._session_headers_sent:
            self._session_clear_cookie(config)

    def _session_commit_nowait(self) -> bool:
        """`_session_commit` for the usual change (a stored session's keys changed, nothing
        else) when the store saves immediately (``save_nowait``): no coroutine and no plan
        object. Returns False, having done nothing, for every other case."""
        session = self._session_obj
        config = self._session_cfg
        if (
            session is None
            or config is None
            or config.save_nowait is None
            or session._id is None
            or session._doomed
            or session._user_dirty
        ):
            return False
        sid = session._id
        try:
            update = session._update(now_ms(), config.idle_ms, config.max_bytes)
            if update is None:
                return False  # past its deadline: the general path ends it
            changed, deleted, ttl_ms = update
            config.save_nowait(sid, changed, deleted, ttl_ms / 1000)
        except Exception as exc:
            self._session_save_failed(sid, exc)
            raise
        session._updated()
        return True

    def _session_save_failed(self, sid: str | None, exc: Exception) -> None:
        name = session_tag(sid) if sid is not None else "(new)"
        logger.warning("session %s: save failed: %s", name, exc)
        self._session_error = exc

    async def _session_sync(self) -> None:
        """Saves the session until nothing is left to save; raises the save's error."""
        session = cast(Session, self._session_obj)
        while True:
            if self._session_error is not None:
                raise self._session_error
            task = self._session_commit_task
            if task is None or task.done():
                if not session._unsaved():
                    return
                finished, task = _start(self._session_commit())
                if finished:
                    continue
                # A flush() and a finish() that both wait for the save wait for this one.
                self._session_commit_task = task
            await task

    def _session_fail(self, exc: Exception) -> None:
        """Turns the response into an error page after a failed save."""
        handler = cast(RequestHandler, self)
        if self._session_headers_sent:
            # Too late for an error page: cut the connection, so that the client cannot take the
            # response for a complete success.
            logger.error("session save failed after the response headers were sent")
            close = getattr(handler.request.connection, "close", None)
            if close is not None:
                close()
            return
        status = 503 if isinstance(exc, StoreError) else 500
        if status == 500:
            logger.error("session save failed", exc_info=exc)
        handler.send_error(status, exc_info=(type(exc), exc, exc.__traceback__))

    async def _session_save_then_finish(self) -> Future[None] | None:
        """Saves the session, then finishes; returns Tornado's finish() Future (None: failed)."""
        try:
            if self._session_commit_task is None and self._session_error is None:
                # The usual case, no flush() before: one save, with no task to share.
                await self._session_commit()
                if cast(Session, self._session_obj)._unsaved():  # changed while it saved
                    await self._session_sync()
            else:
                await self._session_sync()
        except Exception as exc:
            self._session_finishing = None
            self._session_fail(exc)
            return None
        self._session_finishing = None
        if not self._session_headers_sent:
            self._session_seal()
        return cast("Future[None]", super().finish())  # type: ignore[misc]

    async def _session_save_then_flush(self, include_footers: bool) -> Future[None]:
        """Saves the session, then flushes; returns Tornado's flush() Future."""
        try:
            await self._session_sync()
        except Exception as exc:
            status = 503 if isinstance(exc, StoreError) else 500
            raise HTTPError(status, "session save failed") from None
        return self.flush(include_footers)

    def flush(self, include_footers: bool = False) -> Future[None]:
        """Saves the session first if it changed, then flushes (see `RequestHandler.flush`)."""
        if self._session_finishing is not None:
            return self._session_finishing
        if not self._session_headers_sent:
            if self._session_must_commit():
                finished, value = _start(self._session_save_then_flush(include_footers))
                if finished:
                    return cast("Future[None]", value)
                result: Future[None] = Future()
                value.add_done_callback(functools.partial(_resolve, result, False))
                return result
            self._session_seal()
        return super().flush(include_footers)  # type: ignore[misc,no-any-return]

    def _session_seal(self) -> None:
        """Called once the session is saved and the response headers are about to be sent."""
        self._session_headers_sent = True
        if self._session_accessed:
            # add_header("Vary", "Cookie") validates a constant, safe value twice; this is what it
            # then does. (_headers is the response headers of every RequestHandler.)
            headers = self._headers
            if "Vary" in headers:
                headers.add("Vary", "Cookie")
            else:
                headers["Vary"] = "Cookie"

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Future[None]:
        """Saves the session first if it changed, then finishes (see `RequestHandler.finish`).

        The returned Future resolves once the response is sent, as Tornado's does.
        """
        pending = self._session_finishing
        if pending is not None:
            if chunk is not None:
                raise RuntimeError("finish() called twice")
            return pending
        if not self._session_must_commit():
            # Nothing to save, so the flush() that finish() makes has nothing to check either.
            if not self._session_headers_sent:
                self._session_seal()
            return super().finish(chunk)  # type: ignore[misc,no-any-return]
        if chunk is not None:
            cast(RequestHandler, self).write(chunk)
        if self._session_commit_task is None and self._session_error is None:
            # The usual case: one save, which with a store that never waits (MemoryStore) costs
            # no task and no turn of the event loop.
            try:
                if self._session_commit_nowait():  # saved, with nothing left to save
                    if not self._session_headers_sent:
                        self._session_seal()
                    return super().finish()  # type: ignore[misc,no-any-return]
                finished, value = _start(self._session_commit())
            except Exception as exc:
                self._session_fail(exc)
                done: Future[None] = Future()
                done.set_result(None)
                return done
            if not finished:
                self._session_commit_task = value  # _session_save_then_finish waits for it
            elif not self._session_obj._unsaved():  # type: ignore[union-attr]
                if not self._session_headers_sent:
                    self._session_seal()
                return super().finish()  # type: ignore[misc,no-any-return]
        finished, value = _start(self._session_save_then_finish())
        if finished:
            if value is None:
                value = Future()
                value.set_result(None)
            return cast("Future[None]", value)
        result: Future[None] = Future()
        self._session_finishing = result
        value.add_done_callback(functools.partial(_resolve, result, True))
        return result

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """Sends an error page (see `RequestHandler.send_error`), unless finish() was called."""
        if self._session_finishing is not None:
            # finish() was called and the response only waits for the save: like a finished
            # Tornado response, it is not replaced by an error page.
            return
        if self._session_obj is None:
            # prepare() did not run (an XSRF failure, say): error pages get an empty session.
            self._session_obj = Session()
        super().send_error(status_code, **kwargs)  # type: ignore[misc]


class BaseHandler(SessionMixin, RequestHandler):
    """A `RequestHandler` with ``self.session``: the base class of the original article's style."""
