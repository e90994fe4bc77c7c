"""The config commands on a fresh machine: no config file is not an error, and the example file validates as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit.cli import main

ROOT = Path(__file__).resolve().parent.parent
NO_CONFIG = "llmkit: no config file (looked at LLMKIT_CONFIG, ./llmkit.yaml, ~/.config/llmkit/config.yaml)"


def test_config_show_without_a_config_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(NO_CONFIG)
    assert out.startswith("defaults:\n") and "max_attempts: 3" in out and "openai/gpt-4o-mini (weight 3)" in out
    assert "needs --model NAME" in out and ".cache/llmkit (llmkit run caches there by default)" in out


def test_config_validate_without_a_config_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(NO_CONFIG) and out.startswith("ok: no config file to validate")


def test_models_without_a_config_shows_the_offline_pool(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    out, err = capsys.readouterr()
    assert NO_CONFIG in err and "--provider openai lists what LiteLLM knows" in err
    assert [f["model"] for f in json.loads(out)] == ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]


def test_models_lists_what_litellm_knows_for_a_provider(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--provider", "anthropic", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert "anthropic/claude-haiku-4-5" in [f["model"] for f in facts]
    assert all(f["model"].startswith("anthropic/") and f["known"] for f in facts)
    assert main(["models", "--provider", "antropic"]) == 2
    assert "knows no chat model for provider 'antropic' (did you mean 'anthropic'?)" in capsys.readouterr().err


def test_the_example_config_validates_with_no_variable_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", "--config", str(ROOT / "examples" / "llmkit.yaml")]) == 0
    assert "default (2 models), thinking (2 models), local (1 model)" in capsys.readouterr().out
