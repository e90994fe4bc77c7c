"""Shared state on Redis: rate limits, cooldowns and a cache tier that several processes (or machines) share.

``RedisState(url)`` is one connection to one Redis, namespaced by pool. It hands out the three shared pieces:

- ``limiter(limits)``: a ``RateLimiter`` whose two buckets and concurrency slots live in Redis. One Lua script per
  grant reserves in both buckets at the server's clock and returns how long to sleep, so N processes together keep to
  the limit and never poll for start times (only a caller waiting for a concurrency slot polls, every 20 ms).
  Concurrency slots are members of a sorted set scored by a lease that a heartbeat thread renews: a killed process's
  slots come back when its lease runs out (30 s).
- ``routing(router, deployments)``: publishes each deployment's cooldown, pace and removal (set by the local
  ``Router``'s rules) and reads the others' at most every 50 ms, so one process's 429 or bad key cools down or
  removes that deployment for all of them.
- ``cache(local=...)``: a Redis tier behind the local disk cache, same fingerprints and JSON entries.

Keys are ``llmkit:<namespace>:...`` with deployments named by a hash of (name, api_base, hash of the key): never a key.
Faults: an unreachable Redis at start is a ``ConfigError``; lost later, every piece falls back to this process alone
(local buckets, local cooldowns, the disk cache) with one warning, and tries Redis again every second until it answers.
The ``redis`` package is imported lazily: ``import llmkit`` never loads it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ._cache import ResponseCache, _fallback
from ._limiter import Clock, Permit, RateLimiter, Sleep
from ._params import Model, RateLimits
from ._result import Completion
from .errors import ConfigError

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from ._router import Router

__all__ = ["RedisState", "SharedCache", "SharedLimiter", "SharedRouting", "deployment_id"]

logger = logging.getLogger("llmkit")

_SLOT_POLL_S = 0.02
_REFRESH_S = 0.05  # how stale another process's cooldown may be when a request picks a deployment
_RETRY_AFTER_LOSS_S = 1.0
_REMOVED_TTL_S = 3600
_IDLE_TTL_MS = 120_000  # a bucket unused this long is full again anyway: let Redis drop it

# KEYS: bucket hash, slot sorted set. ARGV: rpm, tpm, tokens, max_concurrency (0: none), slot member, lease seconds.
# Returns {request wait s, token wait s, 1 if a slot was taken}. A slot is taken only when nothing must wait, so a
# caller sleeping on a bucket never holds one (as in the local limiter).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local function take(field, per_minute, amount)
  if per_minute <= 0 or amount <= 0 then return 0 end
  local level = tonumber(redis.call('HGET', KEYS[1], field) or per_minute)
  local at = tonumber(redis.call('HGET', KEYS[1], field .. '@') or now)
  level = math.min(per_minute, level + (now - at) * per_minute / 60) - amount
  redis.call('HSET', KEYS[1], field, string.format('%.17g', level), field .. '@', string.format('%.17g', now))
  if level >= 0 then return 0 end
  return -level * 60 / per_minute
end
local wr = take('r', tonumber(ARGV[1]), 1)
local wt = take('t', tonumber(ARGV[2]), tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], 120000)
local slot = 1
local limit = tonumber(ARGV[4])
if limit > 0 then
  slot = 0
  if wr == 0 and wt == 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    if redis.call('ZCARD', KEYS[2]) < limit then
      redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), ARGV[5])
      redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[6]) * 1000))
      slot = 1
    end
  end
end
return {string.format('%.6f', wr), string.format('%.6f', wt), slot}
"""

# KEYS: bucket hash, slot sorted set. ARGV: max_concurrency, member, lease seconds. Returns 1 if the slot was taken.
_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[3]) * 1000))
return 1
"""

# KEYS: bucket hash, slot sorted set. ARGV: rpm, tpm, requests back, tokens back, slot member ('' for none).
# Hands a reservation back (cancelled waiter) or corrects the token estimate (usage known), and frees the slot.
_GIVE_BACK = """
local function give(field, per_minute, amount)
  if per_minute <= 0 or amount == 0 then return end
  local level = tonumber(redis.call('HGET', KEYS[1], field))
  if level == nil then return end
  redis.call('HSET', KEYS[1], field, string.format('%.17g', math.min(per_minute, level + amount)))
end
give('r', tonumber(ARGV[1]), tonumber(ARGV[3]))
give('t', tonumber(ARGV[2]), tonumber(ARGV[4]))
if ARGV[5] ~= '' then redis.call('ZREM', KEYS[2], ARGV[5]) end
return 1
"""


class _Lua:
    """A script run by its SHA1 (EVALSHA), loaded with SCRIPT LOAD the first time and again after NOSCRIPT (a restarted
    or failed-over server has forgotten it)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def run(self, client: redis.asyncio.Redis, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]

    def run_sync(self, client: redis.Redis, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)


_RESERVE_LUA, _SLOT_LUA, _GIVE_BACK_LUA = _Lua(_RESERVE), _Lua(_SLOT), _Lua(_GIVE_BACK)


def deployment_id(model: Model) -> str:
    """A stable name for a deployment in Redis keys: a hash of its name, endpoint and key's hash (never the key)."""
    key = model.api_key.get_secret_value() if model.api_key else ""
    parts = [model.name, model.api_base or "", hashlib.sha256(key.encode()).hexdigest() if key else ""]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=f"{user}{host}" + (f":{parts.port}" if parts.port else "")))


class RedisState:
    """One Redis shared by every process of a pool: ``RedisState("redis://host:6379/0", namespace="default")``.

    Checks the server at once (``ConfigError`` if it does not answer). Pass it as ``LLMClient(shared=...)`` for
    shared limits and cooldowns, and ``cache=state.cache(local=...)`` for the shared cache tier.
    """

    def __init__(self, url: str, *, namespace: str = "default", timeout_s: float = 2.0, lease_s: float = 30.0) -> None:
        """``timeout_s`` bounds every Redis call; ``lease_s`` is how long a killed process's concurrency slots stay
        taken (the live ones renew theirs every third of it)."""
        try:
            import redis
        except ImportError:
            raise ConfigError("shared state on Redis needs the redis package: pip install 'llmkit[redis]'") from None
        self.url = url
        self.namespace = namespace
        self._timeout_s = timeout_s
        self.lease_s = lease_s
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        try:
            self._sync: redis.Redis = redis.Redis.from_url(url, **self._options())
            self._sync.ping()
        except ValueError as exc:
            raise ConfigError(f"bad Redis URL {_shown(url)!r}: {exc}; write redis://host:6379/0") from None
        except self._errors as exc:
            raise ConfigError(
                f"Redis at {_shown(url)} does not answer ({type(exc).__name__}: {exc}); start it, or fix the URL "
                "(shared: {redis_url: ...} in the config, or RedisState(url))"
            ) from None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._lost_at: float | None = None
        self._retry_at = 0.0
        self._process = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._ids = itertools.count()
        self._held: dict[str, set[str]] = {}
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"RedisState({_shown(self.url)!r}, namespace={self.namespace!r})"

    def _options(self, for_asyncio: bool = False) -> dict[str, Any]:
        """Bounded calls: redis-py's default retries a lost server 10 times with backoff (seconds per call during an
        outage); one immediate retry is enough to replace a pooled connection the server dropped."""
        from redis.backoff import NoBackoff

        if for_asyncio:
            from redis.asyncio.retry import Retry
        else:
            from redis.retry import Retry  # type: ignore[assignment]
        return {
            "socket_timeout": self._timeout_s,
            "socket_connect_timeout": self._timeout_s,
            "retry": Retry(NoBackoff(), 1),
        }

    def key(self, *parts: str) -> str:
        return ":".join(("llmkit", self.namespace, *parts))

    # -- the pieces ---------------------------------------------------------------------------------------------

    def limiter(
        self,
        limits: RateLimits,
        scope: str = "client",
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> SharedLimiter:
        """A limiter for ``scope`` ("client", or a ``deployment_id``) shared by every process using this state."""
        return SharedLimiter(self, limits, scope, clock=clock, sleep=sleep, on_wait=on_wait)

    def routing(self, router: Router, deployments: Sequence[Model]) -> SharedRouting:
        return SharedRouting(self, router, deployments)

    def cache(
        self, local: ResponseCache | str | os.PathLike[str] | None = None, *, ttl: float | None = None
    ) -> SharedCache:
        """The shared cache tier; ``local`` (a ``ResponseCache`` or a directory) is read first and filled from Redis."""
        if local is not None and not isinstance(local, ResponseCache):
            local = ResponseCache(local, ttl=ttl)
        return SharedCache(self, local, ttl=ttl)

    # -- connections and faults -----------------------------------------------------------------------------------

    @property
    def sync(self) -> redis.Redis:
        return self._sync

    def aclient(self) -> redis.asyncio.Redis:
        """The asyncio client of the running loop (a client's connections belong to one loop)."""
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = redis.asyncio.Redis.from_url(self.url, **self._options(True))
        return client

    def usable(self) -> bool:
        """False while Redis is lost, until the next time to try again."""
        return self._lost_at is None or time.monotonic() >= self._retry_at

    def lost(self, exc: BaseException) -> None:
        """Redis stopped answering: warn once per outage, and try again in a second."""
        with self._lock:
            first = self._lost_at is None
            if first:
                self._lost_at = time.monotonic()
            self._retry_at = time.monotonic() + _RETRY_AFTER_LOSS_S
        if first:
            logger.warning(
                "Redis at %s is unreachable (%s: %s): falling back to this process's own rate limits, cooldowns and "
                "local cache until it answers again; nothing is lost",
                _shown(self.url),
                type(exc).__name__,
                exc,
            )

    def answered(self) -> None:
        """A Redis call succeeded: end an outage, if there was one. A call that was already on its way when Redis was
        lost may still succeed just after; only one sent once it was time to try again says Redis is back."""
        if self._lost_at is not None and time.monotonic() >= self._retry_at:
            with self._lock:
                lost_at, self._lost_at = self._lost_at, None
            if lost_at is not None:
                logger.warning(
                    "Redis at %s answers again after %.1f s: shared state resumed",
                    _shown(self.url),
                    time.monotonic() - lost_at,
                )

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """The exceptions that mean "Redis is not answering"."""
        return self._errors

    # -- concurrency slots ----------------------------------------------------------------------------------------

    def new_member(self) -> str:
        return f"{self._process}:{next(self._ids)}"

    def hold(self, slots: str, member: str) -> None:
        with self._lock:
            self._held.setdefault(slots, set()).add(member)
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(target=self._renew, name="llmkit-redis-lease", daemon=True)
                self._heartbeat.start()

    def drop(self, slots: str, member: str) -> None:
        with self._lock:
            self._held.get(slots, set()).discard(member)

    def _renew(self) -> None:
        """Extend the leases of the slots this process holds, a third of a lease at a time."""
        while not self._stop.wait(self.lease_s / 3):
            with self._lock:
                held = {slots: list(members) for slots, members in self._held.items() if members}
            try:
                now = self._sync.time()
                until = now[0] + now[1] / 1e6 + self.lease_s
                pipe = self._sync.pipeline(transaction=False)
                for slots, members in held.items():
                    pipe.zadd(slots, dict.fromkeys(members, until), xx=True)
                    pipe.pexpire(slots, int(self.lease_s * 1000))
                pipe.execute()
            except self._errors as exc:
                logger.debug("renewing Redis slot leases failed: %s", exc)

    def close(self) -> None:
        """Stop the lease thread and close the connections (those of loops still running are left to them)."""
        self._stop.set()
        self._sync.close()
        for loop, client in list(self._async.items()):
            if not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(client.aclose())
        self._async.clear()

    async def aclose(self) -> None:
        """Close the running loop's connections (then ``close`` for the rest)."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()

    def __enter__(self) -> RedisState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SharedPermit(Permit):
    """A grant from Redis: ``release`` frees its slot there and corrects the token bucket by the real usage."""

    __slots__ = ("_member",)

    def __init__(self, limiter: SharedLimiter, tokens: int, member: str) -> None:
        super().__init__(limiter, tokens)
        self._member = member

    def release(self, actual_tokens: int | None = None) -> None:
        if not self._released:
            self._released = True
            assert isinstance(self._limiter, SharedLimiter)
            self._limiter._release_shared(self.tokens, actual_tokens, self._member)


class SharedLimiter(RateLimiter):
    """``RateLimiter`` held in Redis; its own local buckets are the fallback while Redis is lost."""

    def __init__(
        self,
        state: RedisState,
        limits: RateLimits,
        scope: str,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        super().__init__(limits, clock=clock, sleep=sleep, on_wait=on_wait)
        self._state = state
        self._keys = [state.key("limits", scope), state.key("slots", scope)]
        self._shared_in_flight = 0
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """This process's requests in flight under this limiter (Redis knows every process's)."""
        return self._in_flight + self._shared_in_flight

    async def acquire(self, tokens: int) -> Permit:
        """Wait for the shared buckets and a shared slot; the local ones while Redis is lost."""
        too_big = self.limits.tokens_per_minute is not None and tokens > self.limits.tokens_per_minute
        if too_big or not self._state.usable():
            return await super().acquire(tokens)  # too big: the local limiter raises the ConfigError
        try:
            return await self._acquire_shared(tokens)
        except self._state.errors as exc:
            self._state.lost(exc)
            return await super().acquire(tokens)

    async def _acquire_shared(self, tokens: int) -> Permit:
        limits = self.limits
        client = self._state.aclient()
        member = self._state.new_member() if limits.max_concurrency else ""
        args = [
            limits.requests_per_minute or 0,
            limits.tokens_per_minute or 0,
            tokens,
            limits.max_concurrency or 0,
            member,
            self._state.lease_s,
        ]
        request_wait, token_wait, slot = await _RESERVE_LUA.run(client, self._keys, args)
        self._state.answered()
        request_s, token_s = float(request_wait), float(token_wait)
        try:
            if max(request_s, token_s) > 0:
                self._on_wait("requests" if request_s >= token_s else "tokens", max(request_s, token_s))
                await self._sleep(max(request_s, token_s))
            if member and not slot:
                await self._wait_for_slot(client, member)
        except BaseException:
            self._later([0, 0, 1, tokens, ""])
            raise
        if member:
            self._state.hold(self._keys[1], member)
        self._shared_in_flight += 1
        return _SharedPermit(self, tokens, member)

    async def _wait_for_slot(self, client: redis.asyncio.Redis, member: str) -> None:
        """Every slot is taken, somewhere: try again every 20 ms (Redis tells no one when a slot frees)."""
        start = self._clock()
        while not await _SLOT_LUA.run(client, self._keys, [self.limits.max_concurrency, member, self._state.lease_s]):
            await self._sleep(_SLOT_POLL_S)
        self._on_wait("concurrency", self._clock() - start)

    def _release_shared(self, reserved: int, actual: int | None, member: str) -> None:
        self._shared_in_flight -= 1
        if member:
            self._state.drop(self._keys[1], member)
        correction = reserved - actual if actual is not None and self.limits.tokens_per_minute else 0
        if member or correction:
            self._later([0, 0, 0, correction, member])

    def _later(self, args: list[Any]) -> None:
        """Give back to the buckets and free the slot without making the caller wait for Redis (best effort: a lost
        give-back only makes the limit stricter for a moment, and a lost slot frees when its lease runs out)."""
        args[0], args[1] = self.limits.requests_per_minute or 0, self.limits.tokens_per_minute or 0
        if not self._state.usable():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            try:
                _GIVE_BACK_LUA.run_sync(self._state.sync, self._keys, args)
            except self._state.errors as exc:
                self._state.lost(exc)
            return
        task = loop.create_task(self._give_back(args))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _give_back(self, args: list[Any]) -> None:
        try:
            await _GIVE_BACK_LUA.run(self._state.aclient(), self._keys, args)
        except self._state.errors as exc:
            self._state.lost(exc)


class SharedRouting:
    """Publishes this process's cooldowns, paces and removals per deployment, and merges the others' into the router.

    Keys: ``cooldown:<deployment_id>`` (value: the pace interval; expiry: the cooldown left) and
    ``removed:<deployment_id>`` (value: the reason; kept an hour).
    """

    def __init__(self, state: RedisState, router: Router, deployments: Sequence[Model]) -> None:
        self._state = state
        self._router = router
        ids = [deployment_id(m) for m in deployments]
        self._cooldowns = [state.key("cooldown", i) for i in ids]
        self._removals = [state.key("removed", i) for i in ids]
        self._next_read = 0.0
        self._reading: asyncio.Future[None] | None = None

    async def refresh(self) -> None:
        """Merge the other processes' cooldowns and removals, read at most every 50 ms; callers that arrive while a
        read is on its way wait for it, so no request picks a deployment on state older than that."""
        reading = self._reading
        if reading is not None and not reading.done() and reading.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(reading)
            return
        now = time.monotonic()
        if now < self._next_read or not self._state.usable():
            return
        self._next_read = now + _REFRESH_S
        self._reading = asyncio.ensure_future(self._read())
        await asyncio.shield(self._reading)

    async def _read(self) -> None:
        try:
            pipe = self._state.aclient().pipeline(transaction=False)
            for cooldown, removed in zip(self._cooldowns, self._removals, strict=True):
                pipe.pttl(cooldown)
                pipe.get(cooldown)
                pipe.get(removed)
            replies = await pipe.execute()
        except self._state.errors as exc:
            self._state.lost(exc)
            return
        self._state.answered()
        for index in range(len(self._cooldowns)):
            left_ms, interval, removed = replies[3 * index : 3 * index + 3]
            if left_ms > 0 or removed is not None:
                self._router.merge_shared(
                    index,
                    cooldown_s=max(0, left_ms) / 1000,
                    interval=float(interval or 0),
                    removed=removed.decode() if removed is not None else None,
                )

    def publish(self, index: int) -> None:
        """After a failure: tell the others this deployment's cooldown, pace and removal (if any)."""
        cooldown_s, interval, removed = self._router.shared_view(index)
        if (cooldown_s <= 0 and removed is None) or not self._state.usable():
            return
        try:
            pipe = self._state.sync.pipeline(transaction=False)
            if cooldown_s > 0:
                pipe.set(self._cooldowns[index], repr(interval), px=max(1, int(cooldown_s * 1000)))
            if removed is not None:  # the error type only: a provider's message may echo part of a key
                pipe.set(self._removals[index], removed.split(":", 1)[0], ex=_REMOVED_TTL_S)
            pipe.execute()
        except self._state.errors as exc:
            self._state.lost(exc)


class SharedCache:
    """The response cache on Redis, behind an optional local ``ResponseCache`` that is read first.

    A hit in Redis is copied into the local cache. ``put`` writes both; each Redis ``SET`` is committed when it
    returns (its durability is the server's: RDB/AOF). TTL becomes the Redis key's expiry. An unreadable entry is a
    miss; while Redis is lost the local cache alone answers and stores.
    """

    def __init__(self, state: RedisState, local: ResponseCache | None = None, *, ttl: float | None = None) -> None:
        self.state = state
        self.local = local
        self.ttl = ttl if ttl is not None else (local.ttl if local is not None else None)
        self.namespace = local.namespace if local is not None else None
        self.path = local.path if local is not None else _shown(state.url)

    def _key(self, fingerprint: str) -> str:
        return self.state.key("cache", *([self.namespace] if self.namespace else []), fingerprint)

    def get(
        self, fingerprints: list[str], validate: Callable[[Completion], Completion | None] | None = None
    ) -> Completion | None:
        """As ``ResponseCache.get``: the local tier first, then Redis; ``validate`` re-checks an ``output=`` answer."""
        start = time.perf_counter()
        if self.local is not None and (hit := self.local.get(fingerprints, validate)) is not None:
            return hit
        if not self.state.usable():
            return None
        try:
            found = self.state.sync.mget([self._key(f) for f in fingerprints])
        except self.state.errors as exc:
            self.state.lost(exc)
            return None
        self.state.answered()
        for fingerprint, data in zip(fingerprints, found, strict=True):
            if data is None:
                continue
            try:
                completion = Completion.model_validate_json(data)
            except ValueError as exc:
                logger.warning("unreadable entry in the Redis cache (%s) counts as a miss", type(exc).__name__)
                continue
            if validate is not None and (completion := validate(completion)) is None:  # type: ignore[assignment]
                continue
            if self.local is not None:
                self.local.put(fingerprint, completion)
            return completion.model_copy(
                update={"cache_hit": True, "attempts": 0, "latency_s": time.perf_counter() - start}
            )
        return None

    def put(self, fingerprint: str, completion: Completion) -> None:
        if not completion.ok:
            return
        if self.local is not None:
            self.local.put(fingerprint, completion)
        if not self.state.usable():
            return
        data = completion.model_dump_json(exclude={"error"}, fallback=_fallback)
        try:
            self.state.sync.set(self._key(fingerprint), data, px=int(self.ttl * 1000) if self.ttl else None)
        except self.state.errors as exc:
            self.state.lost(exc)
            return
        self.state.answered()

    def close(self) -> None:
        """Closes the local tier; the ``RedisState`` is closed by its owner."""
        if self.local is not None:
            self.local.close()
