"""Settings, config discovery, ${ENV} interpolation and config validation messages (no network, no litellm)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import yaml

from llmkit import ConfigError, FileUploads, Model, RateLimits, ResponseCache, RetryPolicy, SamplingParams
from llmkit._settings import (
    CacheConfig,
    LLMKitSettings,
    PoolConfig,
    SharedConfig,
    client_from_config,
    find_config,
    load_config,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "llmkit.yaml"
MARKER = "sk-MARKER-5ecret-d0-not-print"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def config_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


# -- LLMKitSettings ---------------------------------------------------------------------------------------------------


def test_settings_defaults(tmp_path: Path) -> None:
    settings = LLMKitSettings()
    assert settings.cache_dir == tmp_path / "home" / ".cache" / "llmkit"
    assert settings.config is None
    assert settings.log_level == "WARNING"
    assert settings.default_limits() is None


def test_settings_from_environment_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / ".env", "LLMKIT_LOG_LEVEL=info\nLLMKIT_REQUESTS_PER_MINUTE=120\nOPENAI_API_KEY=not-a-setting\n")
    monkeypatch.setenv("LLMKIT_CACHE_DIR", "~/elsewhere")
    monkeypatch.setenv("LLMKIT_MAX_CONCURRENCY", "4")
    settings = LLMKitSettings()
    assert settings.log_level == "INFO"
    assert settings.cache_dir == tmp_path / "home" / "elsewhere"
    assert settings.default_limits() == RateLimits(requests_per_minute=120, max_concurrency=4)


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_REQUESTS_PER_MINUTE", "-5")
    with pytest.raises(ConfigError, match=r"LLMKIT_REQUESTS_PER_MINUTE='-5': .*greater than 0"):
        LLMKitSettings()


# -- discovery --------------------------------------------------------------------------------------------------------

POOL = "pools:\n  default:\n    models: [openai/gpt-4o-mini]\n"


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_config() is None
    user = write(tmp_path / "home" / ".config" / "llmkit" / "config.yaml", POOL)
    assert find_config() == (user, "~/.config/llmkit/config.yaml")
    local = write(tmp_path / "llmkit.yaml", POOL)
    assert find_config() == (Path("llmkit.yaml"), "./llmkit.yaml")
    env = write(tmp_path / "env.yaml", POOL)
    monkeypatch.setenv("LLMKIT_CONFIG", str(env))
    assert find_config() == (env, "LLMKIT_CONFIG")
    given = write(tmp_path / "given.yaml", POOL)
    assert find_config(given) == (given, "given")
    assert local.exists()


def test_missing_files_are_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="config file .*nope.yaml does not exist"):
        find_config(tmp_path / "nope.yaml")
    monkeypatch.setenv("LLMKIT_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match="LLMKIT_CONFIG=.*gone.yaml.* names no file"):
        find_config()


def test_client_from_config_logs_which_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "llmkit.yaml", POOL)
    with caplog.at_level(logging.INFO, logger="llmkit"):
        client = client_from_config()
    assert "llmkit.yaml (./llmkit.yaml), pool 'default'" in caplog.text
    assert [m.name for m in client.models] == ["openai/gpt-4o-mini"]
    assert client.cache is None


def test_a_pool_names_its_context_window_fallbacks(tmp_path: Path) -> None:
    fallbacks = "    context_window_fallbacks:\n      - gemini/gemini-2.5-flash\n"
    fallbacks += "      - {name: openai/x, api_key: '${MY_KEY}'}\n"
    write(tmp_path / ".env", f"MY_KEY={MARKER}\n")
    write(tmp_path / "llmkit.yaml", POOL + fallbacks)
    client = client_from_config()
    assert [m.name for m in client.models] == ["openai/gpt-4o-mini"]
    assert [m.name for m in client.context_window_fallbacks] == ["gemini/gemini-2.5-flash", "openai/x"]
    assert MARKER in load_config(tmp_path / "llmkit.yaml").secrets
    write(tmp_path / "bad.yaml", POOL + "    context_window_fallbacks: [{name: openai/y, weight: -1}]\n")
    assert "pools.default.context_window_fallbacks[0].weight" in config_error(tmp_path / "bad.yaml")


def test_client_from_config_without_any_file() -> None:
    with pytest.raises(ConfigError, match=r"no llmkit config file found \(looked at LLMKIT_CONFIG, ./llmkit.yaml"):
        client_from_config()


# -- building a client ------------------------------------------------------------------------------------------------

FULL = """\
pools:
  default:
    models:
      - name: openai/gpt-4o-mini
        weight: 3
        api_key: ${OPENAI_API_KEY}
        sampling: {max_tokens: 100}
        limits: {requests_per_minute: 10}
      - name: anthropic/claude-haiku-4-5
        api_base: ${ANTHROPIC_BASE:-http://127.0.0.1:9/}
    sampling: {temperature: 0}
    limits: {max_concurrency: 8}
    retry: {max_attempts: 5, jitter: false}
    cache: {path: ./cache, ttl_s: 60, namespace: team}
    uploads: {threshold_bytes: 1000000, providers: {openai: never}}
  other:
    models: [openai/gpt-4o-mini]
"""


def test_client_from_config_builds_every_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", MARKER)
    monkeypatch.setenv("LLMKIT_TOKENS_PER_MINUTE", "1000")
    path = write(tmp_path / "conf.yaml", FULL)
    client = client_from_config(path)
    first, second = client.models
    assert first == Model(
        "openai/gpt-4o-mini",
        weight=3,
        api_key=MARKER,
        sampling=SamplingParams(max_tokens=100),
        limits=RateLimits(requests_per_minute=10),
    )
    assert second == Model("anthropic/claude-haiku-4-5", api_base="http://127.0.0.1:9/")
    assert client.sampling == SamplingParams(temperature=0)
    assert client.retry == RetryPolicy(max_attempts=5, jitter=False)
    assert client.limits == RateLimits(max_concurrency=8)  # the pool's limits win over LLMKIT_TOKENS_PER_MINUTE
    assert isinstance(client.cache, ResponseCache)
    assert (client.cache.path, client.cache.ttl, client.cache.namespace) == (Path("cache"), 60, "team")
    assert client._uploads.policy == FileUploads(threshold_bytes=1_000_000, providers={"openai": "never"})
    client.close()
    assert MARKER not in repr(client) and MARKER not in repr(load_config(path))


def test_settings_limits_apply_when_the_pool_has_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_TOKENS_PER_MINUTE", "1000")
    client = client_from_config(write(tmp_path / "conf.yaml", POOL))
    assert client.limits == RateLimits(tokens_per_minute=1000)


def test_cache_short_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml", POOL + "    cache: true\n  nocache:\n    models: [openai/gpt-4o-mini]\n    cache: false\n"
    )
    config = load_config(path)
    assert config.pool("default").cache == CacheConfig()
    assert config.pool("nocache").cache == CacheConfig(enabled=False)
    client = client_from_config(path)
    assert client.cache is not None and client.cache.path == LLMKitSettings().cache_dir
    client.close()
    assert client_from_config(path, pool="nocache").cache is None


def test_a_pool_name_yaml_reads_as_a_boolean(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", POOL + "  off:\n    models: [openai/gpt-4o-mini]\n")
    assert config_error(path) == (
        f"{path}:1: pools: key False must be a string; quote it (YAML reads unquoted yes/no/on/off/true/false as "
        "booleans, and digits as numbers)"
    )


def test_unknown_pool_lists_the_pools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "x" * 10)
    path = write(tmp_path / "conf.yaml", FULL)
    with pytest.raises(
        ConfigError, match=r"no pool named 'defualt'; pools: default, other \(did you mean 'default'\?\)"
    ):
        client_from_config(path, pool="defualt")


# -- interpolation ----------------------------------------------------------------------------------------------------


def test_interpolation_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASE", "http://host:1")
    monkeypatch.setenv("EMPTY", "")
    path = write(
        tmp_path / "c.yaml",
        """\
pools:
  default:
    models:
      - name: openai/${MODEL:-gpt-4o-mini}
        weight: ${WEIGHT:-2.5}
        api_base: ${BASE}/v1?price=$$5
        api_key: ${EMPTY:-fallback-key}
""",
    )
    model = load_config(path).pool().models[0]
    assert model.name == "openai/gpt-4o-mini"
    assert model.weight == 2.5
    assert model.api_base == "http://host:1/v1?price=$5"
    assert model.api_key is not None and model.api_key.get_secret_value() == "fallback-key"


def test_dotenv_values_are_interpolated(tmp_path: Path) -> None:
    write(tmp_path / ".env", f"MY_KEY={MARKER}\n")
    path = write(tmp_path / "c.yaml", POOL.replace("[openai/gpt-4o-mini]", "[{name: openai/x, api_key: '${MY_KEY}'}]"))
    config = load_config(path)
    assert config.pool().models[0].api_key.get_secret_value() == MARKER  # type: ignore[union-attr]
    assert MARKER in config.secrets


def test_missing_variable_names_it_and_never_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SET_KEY", MARKER)
    path = write(
        tmp_path / "c.yaml",
        """\
pools:
  default:
    models:
      - name: openai/gpt-4o-mini
        api_key: ${SET_KEY}
      - name: openai/gpt-4o-mini
        api_key: ${UNSET_KEY}
""",
    )
    message = config_error(path)
    assert message == (
        f"{path}:7: pools.default.models[1].api_key: environment variable UNSET_KEY is not set; "
        "export UNSET_KEY=... (or put it in .env), or give a default: ${UNSET_KEY:-default}"
    )
    assert MARKER not in message
    # Offline (the fake provider needs no key) a missing key variable means "no key".
    assert load_config(path, require_keys=False).pool().models[1].api_key is None


def test_missing_variable_outside_api_key_is_always_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", POOL.replace("[openai/gpt-4o-mini]", "[{name: '${MODEL_NAME}'}]"))
    assert "environment variable MODEL_NAME is not set" in config_error(path, require_keys=False)


def test_malformed_reference(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", POOL.replace("[openai/gpt-4o-mini]", "[{name: 'openai/${MODEL NAME}'}]"))
    assert "pools.default.models[0].name: malformed reference '${MODEL NAME}'" in config_error(path)


# -- validation messages ----------------------------------------------------------------------------------------------


def test_unknown_keys_give_path_line_and_allowed_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        """\
pools:
  default:
    models:
      - name: openai/gpt-4o-mini
      - name: anthropic/claude-haiku-4-5
        temperature: 0.2
    sampling:
      temprature: 0.1
    retries: {max_attempts: 2}
""",
    )
    lines = config_error(path).splitlines()
    assert lines == [
        f"{path}:6: pools.default.models[1].temperature: unknown key; allowed: name, weight, api_base, api_key, "
        "sampling, limits, supports, provider_options, input_cost_per_token, output_cost_per_token, transport "
        "(temperature goes under 'sampling:')",
        f"{path}:8: pools.default.sampling.temprature: unknown key; allowed: temperature, top_p, max_tokens, stop, "
        "seed, reasoning_effort, thinking_budget, logprobs, top_logprobs, json_mode (did you mean 'temperature'?)",
        f"{path}:9: pools.default.retries: unknown key; allowed: models, sampling, limits, retry, cache, "
        "context_window_fallbacks, timeout_s, shared, uploads (did you mean 'retry'?)",
    ]


def test_bad_values_give_path_value_and_rule(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        """\
pools:
  default:
    models:
      - name: openai/gpt-4o-mini
      - name: anthropic/claude-haiku-4-5
        weight: -1
    sampling: {reasoning_effort: extreme}
    retry: {max_attempts: 0}
  empty:
    models: []
""",
    )
    lines = config_error(path).splitlines()
    assert lines[0] == f"{path}:6: pools.default.models[1].weight: must be greater than 0, got -1"
    assert lines[1] == (
        f"{path}:7: pools.default.sampling.reasoning_effort: must be 'none', 'minimal', 'low', 'medium' or 'high', "
        "got 'extreme'"
    )
    assert lines[2] == f"{path}:8: pools.default.retry.max_attempts: must be greater than or equal to 1, got 0"
    assert lines[3].startswith(f"{path}:10: pools.empty.models: List should have at least 1 item")


def test_cross_field_rule(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", POOL + "    sampling: {top_logprobs: 3}\n")
    assert "pools.default.sampling: top_logprobs=3 needs logprobs=True" in config_error(path)


def test_a_bad_uploads_value_names_its_place(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", POOL + "    uploads: {mode: sometimes}\n")
    assert f"{path}:4: pools.default.uploads.mode: must be 'auto', 'always' or 'never', got 'sometimes'" in (
        config_error(path)
    )


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "pools:\n  default:\n    models:\n      - weight: 2\n")
    assert config_error(path) == f"{path}:4: pools.default.models[0].name: required key is missing"


def test_a_bad_key_value_is_masked(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml", POOL.replace("[openai/gpt-4o-mini]", f"[{{name: openai/x, api_key: [{MARKER}]}}]")
    )
    message = config_error(path)
    assert "pools.default.models[0].api_key: must be a valid string, got '***'" in message
    assert MARKER not in message


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", POOL + "    sampling: {temperature: 0}\n    sampling: {temperature: 1}\n")
    assert config_error(path) == f"{path}:5: key 'sampling' appears twice in one mapping (first on line 4); keep one"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty; it needs a 'pools:' mapping"),
        ("- a\n- b\n", "the top level must be a mapping with a 'pools:' key, not a list"),
        ("pools:\n  default:\n    models: [a\n", "not valid YAML"),
        ("pool:\n  default: {}\n", "pool: unknown key; allowed: pools (did you mean 'pools'?)"),
        ("pools: {}\n", "pools: Dictionary should have at least 1 item"),
    ],
)
def test_file_shape_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in config_error(write(tmp_path / "c.yaml", text))


def test_models_short_form_and_supports(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", POOL + "  local:\n    models: [{name: openai/m, supports: [tools, telepathy]}]\n")
    assert (
        "pools.local.models[0].supports[1]: must be 'reasoning', 'logprobs', 'tools', 'vision' or 'json_schema'"
        in config_error(path)
    )


# -- the example file -------------------------------------------------------------------------------------------------


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", MARKER)
    monkeypatch.setenv("ANTHROPIC_API_KEY_2", MARKER + "-2")


def test_example_config_is_valid(example_env: None) -> None:
    config = load_config(EXAMPLE)
    assert list(config.pools) == ["default", "thinking", "local", "cheap", "cheap-gemini", "fleet"]
    default = config.pool()
    assert [(m.name, m.weight) for m in default.models] == [
        ("openai/gpt-4o-mini", 3),
        ("anthropic/claude-haiku-4-5", 1),
    ]
    assert (
        config.pool("cheap").retry == config.pool("cheap-gemini").retry == RetryPolicy(max_attempts=8, max_backoff_s=60)
    )
    assert config.pool("thinking").cache == CacheConfig(enabled=False)
    assert {MARKER, MARKER + "-2"} <= set(config.secrets)


def test_example_config_documents_every_field() -> None:
    """Every field of every section appears in the example, with a comment where it first appears."""
    text = EXAMPLE.read_text()
    lines = text.splitlines()
    for cls in (PoolConfig, CacheConfig, Model, SamplingParams, RateLimits, RetryPolicy, SharedConfig):
        for name in cls.model_fields:
            first = next((line for line in lines if re.match(rf"\s*(- )?{name}:", line)), None)
            assert first is not None, f"{cls.__name__}.{name} is missing from {EXAMPLE.name}"
            assert "#" in first, f"{cls.__name__}.{name} has no comment on its first line: {first!r}"
    assert yaml.safe_load(text)["pools"]
