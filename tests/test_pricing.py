"""The shipped price table prices every built-in provider's common models; names match with
dates, versions and Bedrock prefixes; overrides win; costs add up with cache reads and writes."""

from __future__ import annotations

import configparser
import datetime
import importlib
import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from modelway.canonical import Usage
from modelway.pricing import (
    Price,
    PriceOverride,
    candidates,
    cost_usd,
    load_table,
    price_for,
    table,
)

ROOT = Path(__file__).resolve().parent.parent
PROVIDER_MODULES = [
    "modelway.plugins.providers.openai",
    "modelway.plugins.providers.azure",
    "modelway.plugins.providers.anthropic",
    "modelway.plugins.providers.gemini",
    "modelway.plugins.providers.vertex",
    "modelway.plugins.providers.bedrock",
    "modelway.plugins.providers.mock",
]

COMMON = {
    "openai": ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5",
               "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "gpt-5.2", "gpt-5.4", "gpt-5.5", "o1",
               "o3", "o3-mini", "o4-mini", "text-embedding-3-small", "text-embedding-3-large"],
    "azure": ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-5", "gpt-5-mini", "o3", "o4-mini",
              "gpt-35-turbo", "text-embedding-3-small"],
    "anthropic": ["claude-opus-4-7", "claude-opus-4-6", "claude-opus-4-5", "claude-opus-4-1",
                  "claude-opus-4-20250514", "claude-sonnet-4-6", "claude-sonnet-4-5",
                  "claude-sonnet-4-20250514", "claude-3-7-sonnet-20250219",
                  "claude-3-5-sonnet-20241022", "claude-haiku-4-5-20251001",
                  "claude-3-5-haiku-20241022", "claude-3-haiku-20240307"],
    "gemini": ["gemini-2.0-flash", "gemini-2.0-flash-lite", "gemini-2.5-flash",
               "gemini-2.5-flash-lite", "gemini-2.5-pro", "gemini-3-pro-preview"],
    "vertex": ["gemini-2.0-flash-001", "gemini-2.5-flash", "gemini-2.5-pro",
               "claude-sonnet-4@20250514", "claude-sonnet-4-5@20250929",
               "claude-opus-4-1@20250805", "claude-haiku-4-5@20251001",
               "claude-3-5-sonnet-v2@20241022", "claude-opus-4-6@default"],
    "bedrock": ["anthropic.claude-3-5-sonnet-20241022-v2:0",
                "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
                "anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-opus-4-6-v1",
                "us.anthropic.claude-opus-4-1-20250805-v1:0", "amazon.nova-micro-v1:0",
                "amazon.nova-lite-v1:0", "us.amazon.nova-pro-v1:0",
                "amazon.nova-premier-v1:0", "meta.llama3-3-70b-instruct-v1:0",
                "us.meta.llama4-maverick-17b-instruct-v1:0", "meta.llama3-1-8b-instruct-v1:0",
                "amazon.titan-embed-text-v2:0"],
}


def builtin_providers() -> list[str]:
    names = []
    for module in PROVIDER_MODULES:
        names += [spec.name for spec in importlib.import_module(module).modelway_providers()]
    return names


def test_every_builtin_provider_has_a_dated_sourced_table():
    providers = table().providers
    for name in builtin_providers():
        assert name in providers, f"no prices for built-in provider {name}"
        datetime.date.fromisoformat(providers[name].date)
        assert providers[name].source
        if name != "mock":
            assert providers[name].source.startswith("https://")


@pytest.mark.parametrize(
    ("provider", "model"),
    [(provider, model) for provider, models in COMMON.items() for model in models],
)
def test_common_models_are_priced(provider, model):
    price = price_for(provider, model)
    assert price is not None
    assert price.input > 0
    assert price.output > 0 or "embed" in model


def example_backends():
    """Backends in config/*.yaml and in the README's YAML examples."""
    documents = [path.read_text() for path in (ROOT / "config").glob("*.yaml")]
    readme = (ROOT / "README.md").read_text()
    documents += re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    found = []
    for text in documents:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        backends = data.get("backends") if isinstance(data, dict) else None
        for name, backend in (backends or {}).items():
            if isinstance(backend, dict) and backend.get("model"):
                found.append((name, backend))
    return found


def test_every_example_backend_on_a_real_provider_api_is_priced():
    examples = example_backends()
    assert examples
    checked = 0
    for name, backend in examples:
        if backend.get("base_url") and backend["provider"] in ("openai", "anthropic", "gemini"):
            continue  # an OpenAI-compatible server (vLLM, Ollama, ...): nobody's list price
        assert price_for(backend["provider"], backend["model"]) is not None, (name, backend)
        checked += 1
    assert checked >= 5


def test_the_mock_provider_costs_nothing():
    price = price_for("mock", "anything-at-all")
    assert price is not None
    assert cost_usd(price, Usage(prompt_tokens=10_000, completion_tokens=5_000)) == 0


@pytest.mark.parametrize(
    ("provider", "model", "same_as"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openai", "o3-2025-04-16", "o3"),
        ("openai", "gpt-5-2025-08-07", "gpt-5"),
        ("openai", "gpt-4-0613", "gpt-4"),
        ("openai", "gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("azure", "gpt-4o-2024-11-20", "gpt-4o"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("anthropic", "claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("vertex", "claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("vertex", "publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini", "models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini", "gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini", "gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
        ("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic.claude-3-5-sonnet"),
        ("bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
         "anthropic.claude-3-5-sonnet"),
        ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
         "anthropic.claude-sonnet-4-5"),
        ("bedrock", "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
         "amazon.nova-pro"),
    ],
)
def test_dated_and_versioned_names_match_their_base_model(provider, model, same_as):
    assert price_for(provider, model) == price_for(provider, same_as)
    assert price_for(provider, same_as) is not None


def test_an_exact_snapshot_entry_wins_over_the_dated_fallback():
    assert price_for("openai", "gpt-4o-2024-05-13") == Price(input=5.0, output=15.0)
    assert price_for("openai", "gpt-4o") != price_for("openai", "gpt-4o-2024-05-13")


def test_candidates_shorten_one_step_at_a_time():
    names = [name for name, _ in candidates("us.anthropic.claude-3-5-sonnet-20241022-v2:0")]
    assert names == [
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "anthropic.claude-3-5-sonnet-20241022-v2",
        "anthropic.claude-3-5-sonnet-20241022",
        "anthropic.claude-3-5-sonnet",
    ]
    assert [geo for _, geo in candidates("us.amazon.nova-pro-v1:0")] == [False, True, True, True]


def test_a_geographic_bedrock_profile_costs_ten_percent_more_for_newer_claude():
    regional = price_for("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    global_ = price_for("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert regional is not None and global_ is not None
    assert regional.input == pytest.approx(3.30)
    assert regional.output == pytest.approx(16.50)
    assert regional.cached_input == pytest.approx(0.33)
    assert regional.cache_write == pytest.approx(4.125)
    assert global_.input == 3.00
    # Older models cost the same through a geographic profile.
    assert price_for("bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0") == price_for(
        "bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0")


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "llama3.2"),
        ("openai", "gpt-4o-audio-preview"),  # not silently priced as gpt-4o
        ("openai", "gpt-4o-realtime-preview-2024-12-17"),
        ("anthropic", "claude-unknown-9"),
        ("bedrock", "anthropic.claude-instant-v1"),
        ("bedrock", "amazon.titan-embed-text-v1"),
        ("gemini", "gemini-1.0-pro"),
        ("no-such-provider", "gpt-4o"),
        ("openai", None),
        ("openai", ""),
    ],
)
def test_unknown_models_have_no_price(provider, model):
    assert price_for(provider, model) is None


def test_an_override_replaces_the_table():
    override = PriceOverride(input=2.75, output=11.0, cached_input=1.375)
    assert price_for("azure", "gpt-4o", override) is override
    assert price_for("openai", "my-fine-tune", override) is override
    assert price_for("no-such-provider", None, override) is override


def test_the_override_model_embeds_in_a_backend_config():
    class Backend(BaseModel):
        model: str
        price: PriceOverride | None = None

    backend = Backend.model_validate(
        {"model": "gpt-4o", "price": {"input": 2.5, "output": 10, "cache_write": 3}})
    assert backend.price == PriceOverride(input=2.5, output=10.0, cache_write=3.0)
    for bad in ({"input": 1}, {"input": -1, "output": 1}, {"input": 1, "output": 1, "inptu": 2},
                {"input": "cheap", "output": 1}):
        with pytest.raises(ValidationError):
            Backend.model_validate({"model": "x", "price": bad})


def test_cost_of_openai_usage_with_cache_reads():
    price = price_for("openai", "gpt-4o")
    assert price is not None
    usage = Usage(prompt_tokens=1_000, completion_tokens=500, cached_tokens=400)
    # 600 uncached at 2.50, 400 cached at 1.25, 500 out at 10.00, per million
    assert cost_usd(price, usage) == pytest.approx((600 * 2.5 + 400 * 1.25 + 500 * 10) / 1e6)


def test_cost_of_anthropic_usage_with_cache_reads_and_writes():
    price = price_for("anthropic", "claude-sonnet-4-5")
    assert price is not None
    usage = {"prompt_tokens": 10_000, "cached_tokens": 6_000, "cache_write_tokens": 3_000,
             "completion_tokens": 200}
    expected = (1_000 * 3.0 + 6_000 * 0.30 + 3_000 * 3.75 + 200 * 15.0) / 1e6
    assert cost_usd(price, usage) == pytest.approx(expected)
    assert cost_usd(price, usage) == pytest.approx(0.01905)


def test_missing_cache_rates_bill_as_input():
    price = Price(input=1.0, output=2.0)
    usage = {"prompt_tokens": 1_000_000, "cached_tokens": 250_000,
             "cache_write_tokens": 250_000, "completion_tokens": 1_000_000}
    assert cost_usd(price, usage) == pytest.approx(3.0)


def test_long_prompts_are_billed_at_the_long_context_rates():
    price = price_for("anthropic", "claude-sonnet-4-5")
    assert price is not None
    short = {"prompt_tokens": 200_000, "completion_tokens": 1_000}
    long = {"prompt_tokens": 250_000, "cached_tokens": 50_000, "completion_tokens": 1_000}
    assert cost_usd(price, short) == pytest.approx((200_000 * 3 + 1_000 * 15) / 1e6)
    assert cost_usd(price, long) == pytest.approx(
        (200_000 * 6 + 50_000 * 0.6 + 1_000 * 22.5) / 1e6)
    gemini = price_for("gemini", "gemini-2.5-pro")
    assert gemini is not None
    assert cost_usd(gemini, {"prompt_tokens": 300_000}) == pytest.approx(300_000 * 2.5 / 1e6)


def test_inconsistent_or_odd_counts_do_not_go_negative():
    price = Price(input=1.0, output=1.0, cached_input=0.5)
    assert cost_usd(price, {"prompt_tokens": 10, "cached_tokens": 40}) == pytest.approx(20 / 1e6)
    assert cost_usd(price, {"prompt_tokens": -5, "completion_tokens": True}) == 0
    assert cost_usd(price, Usage()) == 0


def test_table_rates_are_sane():
    for provider in table().providers.values():
        for key, entry in {**provider.exact, **dict(provider.globs)}.items():
            where = f"{provider.name}/{key}"
            if entry.cached_input is not None:
                assert entry.cached_input <= entry.input, where
            if entry.cache_write is not None:
                assert entry.cache_write >= entry.input, where
            if entry.long_context is not None:
                assert entry.long_context.input >= entry.input, where


def test_inheritance_and_globs_in_a_custom_table():
    data = {
        "version": 1,
        "providers": {
            "base": {"date": "2026-01-01", "source": "x",
                     "models": {"m-*": {"input": 1, "output": 1},
                                "m-large-*": {"input": 2, "output": 2}}},
            "child": {"date": "2026-01-01", "source": "y", "inherit": "base",
                      "models": {"m-large-v9": {"input": 9, "output": 9}}},
        },
    }
    child = load_table(data).providers["child"]
    assert child.lookup("m-small-1") is not None
    assert child.lookup("m-large-1")[0].input == 2  # the more specific glob wins
    assert child.lookup("m-large-v9")[0].input == 9  # exact beats every glob
    data["providers"]["child"]["inherit"] = "missing"
    with pytest.raises(ValueError, match="inherits unknown"):
        load_table(data)
    data["providers"]["child"]["inherit"] = "child"
    with pytest.raises(ValueError, match="cycle"):
        load_table(data)


def test_the_data_package_ships_with_the_distribution():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert "modelway.data" in setup["options"]["packages"].split()
    patterns = setup["options.package_data"]["modelway.data"]
    assert "*.yaml" in patterns and "*.tiktoken.gz" in patterns
