"""Settings and config files: ``LLMKitSettings`` from the environment, named model pools from YAML.

A config file is YAML with one top-level key, ``pools``; each pool has models (weights, api_base, keys written as
``${ENV_VAR}`` or ``${ENV_VAR:-default}``), sampling defaults, rate limits, a retry policy and a cache. Every problem is
a ``ConfigError`` giving the file, its line, the key path (``pools.default.models[1].weight``), what is wrong and what
is allowed. Unknown and duplicate keys are errors, so a typo is never silently ignored. A secret value never appears in
a message: values are quoted as written in the file, and keys are masked.
"""

from __future__ import annotations

import logging
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._params import Model, RateLimits, RetryPolicy, SamplingParams
from ._uploads import FileUploads
from .errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from ._cache import ResponseCache
    from ._client import LLMClient
    from ._redis import RedisState, SharedCache

__all__ = [
    "CacheConfig",
    "ConfigFile",
    "LLMKitSettings",
    "PoolConfig",
    "SharedConfig",
    "client_from_config",
    "find_config",
    "load_config",
    "with_shared",
]

logger = logging.getLogger(__name__)

USER_CONFIG = Path("~/.config/llmkit/config.yaml")
LOCAL_CONFIG = Path("llmkit.yaml")
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")
_MISSING = object()


class LLMKitSettings(BaseSettings):
    """llmkit's own settings: ``LLMKIT_*`` environment variables, or a ``.env`` file in the working directory.

    Provider keys are not settings: LiteLLM reads them from the providers' usual variables (``OPENAI_API_KEY``, ...).
    """

    model_config = SettingsConfigDict(env_prefix="LLMKIT_", env_file=".env", extra="ignore", frozen=True)

    config: Path | None = Field(None, description="Config file to use when none is given (LLMKIT_CONFIG).")
    cache_dir: Path = Field(
        default_factory=lambda: Path("~/.cache/llmkit").expanduser(),
        description="Default cache directory (LLMKIT_CACHE_DIR); the CLI caches here unless told otherwise.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "WARNING", description="Level of llmkit's log records shown by the CLI (LLMKIT_LOG_LEVEL)."
    )
    requests_per_minute: float | None = Field(None, gt=0, description="Default client limit when a pool sets none.")
    tokens_per_minute: float | None = Field(None, gt=0, description="Default client limit when a pool sets none.")
    max_concurrency: int | None = Field(None, ge=1, description="Default client limit when a pool sets none.")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = [
                f"LLMKIT_{'_'.join(str(p) for p in e['loc']).upper()}={e['input']!r}: {_message(e)}"
                for e in exc.errors()
            ]
            raise ConfigError("bad llmkit setting (environment or .env): " + "; ".join(problems)) from None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cache_dir", "config", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    def default_limits(self) -> RateLimits | None:
        """The ``LLMKIT_*`` limits as a ``RateLimits``, or None when none is set."""
        given = {
            name: getattr(self, name)
            for name in ("requests_per_minute", "tokens_per_minute", "max_concurrency")
            if getattr(self, name) is not None
        }
        return RateLimits(**given) if given else None


_SECTION = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class CacheConfig(BaseModel):
    """A pool's response cache. ``cache: false`` is short for ``cache: {enabled: false}``."""

    model_config = _SECTION

    enabled: bool = Field(True, description="False: no cache for this pool.")
    path: Path | None = Field(None, description="Cache directory; default LLMKIT_CACHE_DIR, else ~/.cache/llmkit.")
    ttl_s: float | None = Field(None, gt=0, description="Seconds an answer stays valid; null keeps it forever.")
    namespace: str | None = Field(None, min_length=1, description="Separates this pool's entries from others'.")


class SharedConfig(BaseModel):
    """State shared by every process running this pool: rate limits, cooldowns and the cache tier, on Redis."""

    model_config = _SECTION

    redis_url: str = Field(min_length=1, description="redis://host:6379/0 (a password as ${REDIS_PASSWORD}).")
    namespace: str | None = Field(None, min_length=1, description="Prefix of every key; default: the pool's name.")
    cache: bool = Field(True, description="Also share the response cache (behind the local one) when it is on.")


class PoolConfig(BaseModel):
    """One named pool: what ``LLMClient(...)`` takes, as data."""

    model_config = _SECTION

    models: list[Model] = Field(min_length=1, description="Deployments, routed by weight.")
    sampling: SamplingParams | None = Field(None, description="Defaults for every call (a model's own are lower).")
    limits: RateLimits | None = Field(None, description="Client-side limits over the whole pool.")
    retry: RetryPolicy | None = Field(None, description="Retry policy; default RetryPolicy().")
    cache: CacheConfig | None = Field(
        None, description="Response cache; absent means no cache (the CLI's run adds one)."
    )
    context_window_fallbacks: list[Model] = Field(
        default_factory=list, description="Tried in order, only for a prompt too long for the pool's models."
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Seconds each attempt may take, connect to last byte (default 600)."
    )
    shared: SharedConfig | None = Field(None, description="Share limits, cooldowns and cache across processes (Redis).")
    uploads: FileUploads | None = Field(
        None, description="When a File is uploaded through the provider's files API instead of sent inline."
    )

    @field_validator("models", "context_window_fallbacks", mode="before")
    @classmethod
    def _name_is_a_model(cls, value: Any) -> Any:
        # "- openai/gpt-4o-mini" is short for "- name: openai/gpt-4o-mini".
        return [{"name": m} if isinstance(m, str) else m for m in value] if isinstance(value, list) else value

    @field_validator("cache", mode="before")
    @classmethod
    def _bool_cache(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


class ConfigFile(BaseModel):
    """A whole config file: named pools."""

    model_config = ConfigDict(extra="forbid")

    pools: dict[str, PoolConfig] = Field(
        min_length=1, description="Pools by name; 'default' is used when none is named."
    )
    _path: Path | None = PrivateAttr(None)
    _secrets: tuple[str, ...] = PrivateAttr(())

    @property
    def path(self) -> Path | None:
        """The file this was read from."""
        return self._path

    @property
    def secrets(self) -> tuple[str, ...]:
        """Key values and secret-looking variables' values used by this file: never print them."""
        return self._secrets

    def pool(self, name: str = "default") -> PoolConfig:
        """The pool called ``name``; ``ConfigError`` listing the pools if there is none."""
        if name not in self.pools:
            raise ConfigError(
                f"{self.path}: no pool named {name!r}; pools: {', '.join(self.pools)}"
                + did_you_mean(name, list(self.pools))
            )
        return self.pools[name]


class _SamplingShape(SamplingParams):
    __init__ = BaseModel.__init__  # type: ignore[assignment]


class _LimitsShape(RateLimits):
    __init__ = BaseModel.__init__  # type: ignore[assignment]


class _RetryShape(RetryPolicy):
    __init__ = BaseModel.__init__  # type: ignore[assignment]


class _UploadsShape(FileUploads):
    __init__ = BaseModel.__init__  # type: ignore[assignment]


class _ModelShape(Model):
    __init__ = BaseModel.__init__  # type: ignore[assignment]
    sampling: _SamplingShape | None = None
    limits: _LimitsShape | None = None


class _PoolShape(PoolConfig):
    models: list[_ModelShape] = Field(min_length=1)  # type: ignore[assignment]
    context_window_fallbacks: list[_ModelShape] = Field(default_factory=list)  # type: ignore[assignment]
    sampling: _SamplingShape | None = None
    limits: _LimitsShape | None = None
    retry: _RetryShape | None = None
    uploads: _UploadsShape | None = None


class _FileShape(ConfigFile):
    """The same schema with pydantic's own ``__init__``: ``_Params.__init__`` flattens a nested ValidationError into
    one ``ConfigError`` string (quoting the whole mapping, keys included); validating this shape first keeps one
    structured error per problem, with its location."""

    pools: dict[str, _PoolShape] = Field(min_length=1)  # type: ignore[assignment]


# -- discovery ----------------------------------------------------------------------------------------------------


def find_config(
    path: str | os.PathLike[str] | None = None, settings: LLMKitSettings | None = None
) -> tuple[Path, str] | None:
    """The config file to use and why: ``path``, else LLMKIT_CONFIG, ./llmkit.yaml, ~/.config/llmkit/config.yaml.

    Returns None when there is none. Raises ``ConfigError`` when ``path`` or LLMKIT_CONFIG names a missing file.
    """
    if path is not None:
        chosen = Path(path).expanduser()
        if not chosen.is_file():
            raise ConfigError(f"config file {chosen} does not exist")
        return chosen, "given"
    settings = settings or LLMKitSettings()
    if settings.config is not None:
        if not settings.config.is_file():
            raise ConfigError(f"LLMKIT_CONFIG={str(settings.config)!r} names no file; fix the path or unset it")
        return settings.config, "LLMKIT_CONFIG"
    for candidate, why in ((LOCAL_CONFIG, "./llmkit.yaml"), (USER_CONFIG.expanduser(), str(USER_CONFIG))):
        if candidate.is_file():
            return candidate, why
    return None


def searched_places() -> str:
    """Where ``find_config`` looks, for messages."""
    return f"LLMKIT_CONFIG, ./{LOCAL_CONFIG}, {USER_CONFIG}"


# -- loading ------------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(
                    f"{self.name}:{key_node.start_mark.line + 1}: key {key!r} appears twice in one mapping "
                    f"(first on line {seen[key]}); keep one"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | os.PathLike[str], *, require_keys: bool = True) -> ConfigFile:
    """Read, interpolate and validate a config file; ``ConfigError`` names the file, line and key path.

    ``require_keys=False`` lets a missing variable under ``api_key`` become "no key" (for the offline fake provider).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    loader = _Loader(text)
    loader.name = str(path)
    try:
        node = loader.get_single_node()
        raw = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
    if raw is None:
        raise ConfigError(f"{path}: the file is empty; it needs a 'pools:' mapping (see examples/llmkit.yaml)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with a 'pools:' key, not a {type(raw).__name__}")
    env = _Env()
    data = env.interpolate(raw, (), require_keys)
    if env.problems:
        raise ConfigError("\n".join(_locate(path, node, loc) + msg for loc, msg in env.problems))
    try:
        _FileShape.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(path, node, raw, err) for err in exc.errors())) from None
    config = ConfigFile.model_validate(data)
    secrets = env.secrets + [
        m.api_key.get_secret_value()
        for p in config.pools.values()
        for m in [*p.models, *p.context_window_fallbacks]
        if m.api_key
    ]
    config._path, config._secrets = path, tuple(dict.fromkeys(s for s in secrets if s))
    return config


class _Env:
    """``${VAR}`` / ``${VAR:-default}`` interpolation in string values; ``$$`` is a literal ``$``.

    Looks in the environment, then in ./.env. Records the values of secret-looking variables so output can mask them.
    """

    def __init__(self) -> None:
        self.problems: list[tuple[tuple[Any, ...], str]] = []
        self.secrets: list[str] = []
        self._dotenv: Mapping[str, str | None] | None = None

    def lookup(self, name: str) -> str | None:
        if name in os.environ:
            return os.environ[name]
        if self._dotenv is None:
            from dotenv import dotenv_values  # pydantic-settings' own dependency

            self._dotenv = dotenv_values(".env") if Path(".env").is_file() else {}
        return self._dotenv.get(name)

    def interpolate(self, value: Any, loc: tuple[Any, ...], require_keys: bool) -> Any:
        if isinstance(value, dict):
            return {k: self.interpolate(v, (*loc, k), require_keys) for k, v in value.items()}
        if isinstance(value, list):
            return [self.interpolate(v, (*loc, i), require_keys) for i, v in enumerate(value)]
        if not isinstance(value, str) or "$" not in value:
            return value
        is_key = bool(loc) and loc[-1] == "api_key"
        missing: list[str] = []

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name is None:
                self.problems.append(
                    (loc, f"malformed reference {match.group(0)!r}; write ${{NAME}} or ${{NAME:-default}}")
                )
                return ""
            found = self.lookup(name)
            if found is None or (found == "" and default is not None):
                if default is None:
                    missing.append(name)
                    return ""
                found = default
            if is_key or _SECRET_NAME.search(name):
                self.secrets.append(found)
            return found

        result = _REFERENCE.sub(replace, value)
        for name in missing:
            if is_key and not require_keys:
                return None
            self.problems.append(
                (
                    loc,
                    f"environment variable {name} is not set; export {name}=... (or put it in .env), "
                    f"or give a default: ${{{name}:-default}}",
                )
            )
        return result


# -- messages -----------------------------------------------------------------------------------------------------


def key_path(loc: tuple[Any, ...]) -> str:
    """('pools', 'default', 'models', 1, 'weight') -> 'pools.default.models[1].weight'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if type(part) is int else (f".{part}" if out else str(part))
    return out


def _locate(path: Path, node: yaml.Node | None, loc: tuple[Any, ...]) -> str:
    """'file:line: key.path: ' for the deepest node of ``loc`` found in the YAML tree."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    where = f"{path}:{line}" if line is not None else str(path)
    return f"{where}: {key_path(loc)}: " if loc else f"{where}: "


def _raw_at(raw: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if isinstance(raw, dict) and part in raw:
            raw = raw[part]
        elif isinstance(raw, list) and isinstance(part, int) and part < len(raw):
            raw = raw[part]
        else:
            return _MISSING
    return raw


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    return "must be " + msg.removeprefix("Input should be ") if msg.startswith("Input should be ") else msg


def _owner(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class whose fields are allowed at ``loc`` (which ends at a mapping)."""
    kind: Any = ConfigFile
    for part in loc:
        origin = typing.get_origin(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(str(part))
            if field is None:
                return None
            kind = field.annotation
        elif origin in (list, tuple, frozenset, set):
            kind = typing.get_args(kind)[0]
        elif origin is dict:
            kind = typing.get_args(kind)[1]
        else:
            return None
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
            kind = args[0]
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _describe(path: Path, node: yaml.Node | None, raw: Any, err: Mapping[str, Any]) -> str:
    """One problem on one line: where, what is wrong, what was written (secrets masked), what is allowed."""
    loc = tuple(err["loc"])
    if "[key]" in loc:  # a mapping key of the wrong type: YAML read `off:` as False, `1:` as 1
        parent = loc[: loc.index("[key]") - 1]
        written = _raw_at(raw, parent)
        keys = written if isinstance(written, dict) else {}
        key = next((k for k in keys if k == loc[len(parent)] and not isinstance(k, str)), loc[len(parent)])
        return (
            f"{_locate(path, node, parent)}key {key!r} must be a string; quote it "
            "(YAML reads unquoted yes/no/on/off/true/false as booleans, and digits as numbers)"
        )
    where = _locate(path, node, loc)
    if err["type"] == "extra_forbidden":
        owner = _owner(loc[:-1])
        allowed = list(owner.model_fields) if owner else []
        hint = f"; allowed: {', '.join(allowed)}" + did_you_mean(str(loc[-1]), allowed) if allowed else ""
        for section, cls in (("sampling", SamplingParams), ("limits", RateLimits), ("retry", RetryPolicy)):
            if owner is not None and section in owner.model_fields and loc[-1] in cls.model_fields:
                hint += f" ({loc[-1]} goes under '{section}:')"
        return f"{where}unknown key{hint}"
    if err["type"] == "missing":
        return f"{where}required key is missing"
    written = _raw_at(raw, loc)
    if written is _MISSING:
        shown = ""
    elif "api_key" in loc and not (isinstance(written, str) and written.startswith("${")):
        shown = ", got '***'"
    else:
        shown = f", got {written!r}"
    return f"{where}{_message(err)}{shown}"


# -- building a client --------------------------------------------------------------------------------------------


def client_from_config(path: str | os.PathLike[str] | None = None, pool: str = "default") -> LLMClient:
    """An ``LLMClient`` for one pool of a config file, found as ``find_config`` does; raises ``ConfigError``."""
    from ._cache import ResponseCache  # imported here: the layer map has _settings below _client
    from ._client import DEFAULT_TIMEOUT_S, LLMClient

    settings = LLMKitSettings()
    found = find_config(path, settings)
    if found is None:
        raise ConfigError(
            f"no llmkit config file found (looked at {searched_places()}); write one (see examples/llmkit.yaml) "
            "or pass its path"
        )
    logger.info("llmkit config: %s (%s), pool %r", found[0], found[1], pool)
    chosen = load_config(found[0]).pool(pool)
    cache = None
    if chosen.cache is not None and chosen.cache.enabled:
        cache = ResponseCache(
            chosen.cache.path or settings.cache_dir, ttl=chosen.cache.ttl_s, namespace=chosen.cache.namespace
        )
    shared, shared_or_local = with_shared(chosen, pool, cache)
    return LLMClient(
        chosen.models,
        sampling=chosen.sampling,
        limits=chosen.limits or settings.default_limits(),
        retry=chosen.retry,
        cache=shared_or_local,
        context_window_fallbacks=chosen.context_window_fallbacks,
        timeout_s=chosen.timeout_s if chosen.timeout_s is not None else DEFAULT_TIMEOUT_S,
        shared=shared,
        uploads=chosen.uploads,
    )


def with_shared(
    chosen: PoolConfig, pool: str, cache: ResponseCache | None
) -> tuple[RedisState | None, ResponseCache | SharedCache | None]:
    """The pool's ``RedisState`` (keys under its namespace, default the pool's name) or None, and the cache to use:
    ``cache`` with the Redis tier behind it when the pool shares its cache."""
    if chosen.shared is None:
        return None, cache
    from ._redis import RedisState

    state = RedisState(chosen.shared.redis_url, namespace=chosen.shared.namespace or pool)
    return state, state.cache(cache) if cache is not None and chosen.shared.cache else cache
