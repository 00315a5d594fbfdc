"""Model prices and request costs, from the dated price table shipped in `modelway.data`.

The table (`core/data/prices.yaml`) lists, per built-in provider, list prices in USD per
million tokens: input, output, cached input (cache reads) and cache writes, with an as-of
`date` and a `source` per provider. It is read once, on first use; nothing is downloaded.

    price = price_for("anthropic", "claude-sonnet-4-5-20250929")
    cost = cost_usd(price, usage)          # usage: prompt_tokens, cached_tokens, ...

Model names match exactly first, then with versions and dates removed, then against glob keys
(see `candidates` and the header of prices.yaml): `gpt-4o-2024-08-06` is priced as `gpt-4o`,
`claude-sonnet-4@20250514` as `claude-sonnet-4`, `us.anthropic.claude-3-5-sonnet-20241022-v2:0`
as `anthropic.claude-3-5-sonnet`. An unknown provider or model has no price (None): callers
decide what an unpriced request costs. A backend can carry its own price (`PriceOverride`),
which replaces the table's.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

PER_MILLION = 1_000_000

#: Bedrock inference-profile prefixes. A geographic one pins the data to a geography and, for
#: the newer Claude models, costs more (`geo_premium`); `global.` does not.
GEO_PREFIXES = ("us", "eu", "apac", "jp", "au", "ca", "us-gov")
GLOBAL_PREFIX = "global"

_GLOB_CHARS = re.compile(r"[*?\[]")
_PREFIX_RULES = (
    re.compile(r"^arn:aws[\w-]*:bedrock:[^/]*/"),  # an inference-profile or model ARN
    re.compile(r"^publishers/[^/]+/models/"),  # a Vertex resource path
    re.compile(r"^models/"),  # a Gemini resource name
)
_GEO_RULE = re.compile(r"^(?:" + "|".join(map(re.escape, GEO_PREFIXES)) + r")\.")
_GLOBAL_RULE = re.compile(r"^" + re.escape(GLOBAL_PREFIX) + r"\.")
_SUFFIX_RULES = (
    re.compile(r"@[^@]*$"),  # Vertex version: claude-sonnet-4@20250514, @default, @001
    re.compile(r":\d+$"),  # Bedrock minor version: -v2:0
    re.compile(r"-v\d+$"),  # Bedrock version: -v2
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # OpenAI date: gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # Anthropic / Bedrock date: -20250929
    re.compile(r"-\d{4}$"),  # OpenAI MMDD snapshot: gpt-4-0613
    re.compile(r"-\d{3}$"),  # Gemini revision: gemini-2.0-flash-001
    re.compile(r"-latest$"),  # alias: claude-3-7-sonnet-latest
)


class Price(BaseModel):
    """What a model costs, in USD per million tokens.

    `cached_input` (cache reads) and `cache_write` (cache writes) default to `input` when
    absent. `long_context`, when set, replaces every rate for a request whose input (all of
    `prompt_tokens`, cached included) exceeds `long_context.above` tokens: Gemini 2.5 Pro,
    Claude Sonnet 4 / 4.5 and GPT-5.4 bill long prompts that way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    """Uncached input tokens."""
    output: float = Field(ge=0)
    """Output tokens, reasoning included."""
    cached_input: float | None = Field(None, ge=0)
    """Input tokens read from a prompt cache (default: `input`)."""
    cache_write: float | None = Field(None, ge=0)
    """Input tokens written to a prompt cache (default: `input`)."""
    long_context: LongContext | None = None
    """Rates for requests whose input exceeds `long_context.above` tokens."""

    def rates_for(self, prompt_tokens: int) -> Price:
        """The rates that apply to a request with this many input tokens."""
        tier = self.long_context
        if tier is not None and prompt_tokens > tier.above:
            return Price(input=tier.input, output=tier.output, cached_input=tier.cached_input,
                         cache_write=tier.cache_write)
        return self

    def scaled(self, factor: float) -> Price:
        """Every rate multiplied by `factor` (a regional premium, for example)."""

        def times(value: float | None) -> float | None:
            return None if value is None else round(value * factor, 9)

        tier = self.long_context
        return Price(
            input=round(self.input * factor, 9),
            output=round(self.output * factor, 9),
            cached_input=times(self.cached_input),
            cache_write=times(self.cache_write),
            long_context=None if tier is None else LongContext(
                above=tier.above, input=round(tier.input * factor, 9),
                output=round(tier.output * factor, 9), cached_input=times(tier.cached_input),
                cache_write=times(tier.cache_write)),
        )


class LongContext(BaseModel):
    """Rates for requests over `above` input tokens, USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    above: int = Field(gt=0)
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)


Price.model_rebuild()


class PriceOverride(Price):
    """A backend's own price, for the configuration to embed (`price: {...}` on a backend).

    USD per million tokens; it replaces the table's price for that backend whole (negotiated
    rates, Azure Data Zone deployments, a Bedrock region the table does not list, a model the
    table does not know). `input` and `output` are required; `cached_input` and `cache_write`
    default to `input`::

        price: {input: 2.75, output: 11.0, cached_input: 1.375}
    """


class _Entry(Price):
    """A row of the table: a price plus Bedrock's geographic-profile premium."""

    geo_premium: float | None = Field(None, gt=0)


class _ProviderTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: str
    source: str
    inherit: list[str] = Field(default_factory=list)
    models: dict[str, _Entry] = Field(default_factory=dict)

    @field_validator("inherit", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class _TableFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    providers: dict[str, _ProviderTable]


@dataclass(frozen=True)
class ProviderPrices:
    """One provider's resolved prices (inherited models merged in)."""

    name: str
    date: str
    source: str
    exact: Mapping[str, _Entry]
    globs: tuple[tuple[str, _Entry], ...]
    """Glob keys, the most specific (most literal characters) first."""

    def lookup(self, model: str) -> tuple[_Entry, bool] | None:
        """The entry for `model` and whether a geographic Bedrock prefix was removed."""
        names = list(candidates(model))
        for name, geo in names:
            entry = self.exact.get(name)
            if entry is not None:
                return entry, geo
        for pattern, entry in self.globs:
            for name, geo in names:
                if fnmatch.fnmatchcase(name, pattern):
                    return entry, geo
        return None


@dataclass(frozen=True)
class PriceTable:
    """The whole table: providers by name."""

    version: int
    providers: Mapping[str, ProviderPrices]


def candidates(model: str) -> Iterator[tuple[str, bool]]:
    """The names `model` is looked up under, in order, each with whether a geographic Bedrock
    prefix (us., eu., ...) has been removed on the way to it.

    First the name itself, then one prefix or suffix removed at a time: resource paths
    (`models/`, `publishers/<p>/models/`, ARNs), Bedrock profile prefixes, then a Vertex
    `@version`, a Bedrock `:0` and `-v2`, a date (`-2024-08-06`, `-20250929`, `-0613`), a
    Gemini `-001` revision and `-latest`, repeatedly.
    """
    name = model.strip()
    geo = False
    yield name, geo
    while True:
        for rule in _PREFIX_RULES:
            stripped = rule.sub("", name, count=1)
            if stripped != name:
                break
        else:
            stripped = _GEO_RULE.sub("", name, count=1)
            if stripped != name:
                geo = True
            else:
                stripped = _GLOBAL_RULE.sub("", name, count=1)
            if stripped == name:
                for rule in _SUFFIX_RULES:
                    stripped = rule.sub("", name, count=1)
                    if stripped != name:
                        break
        if stripped == name or not stripped:
            return
        name = stripped
        yield name, geo


@functools.cache
def table() -> PriceTable:
    """The shipped price table, loaded and validated once."""
    text = resources.files("modelway.data").joinpath("prices.yaml").read_text(encoding="utf-8")
    return load_table(yaml.safe_load(text))


def load_table(data: Any) -> PriceTable:
    """Validate a price table (the shape of prices.yaml) and resolve `inherit`."""
    parsed = _TableFile.model_validate(data)
    resolved: dict[str, dict[str, _Entry]] = {}

    def models_of(name: str, seen: tuple[str, ...]) -> dict[str, _Entry]:
        if name in resolved:
            return resolved[name]
        if name not in parsed.providers:
            raise ValueError(f"price table: provider '{seen[-1]}' inherits unknown '{name}'")
        if name in seen:
            raise ValueError(f"price table: inheritance cycle {' -> '.join((*seen, name))}")
        provider = parsed.providers[name]
        merged: dict[str, _Entry] = {}
        for parent in provider.inherit:
            merged.update(models_of(parent, (*seen, name)))
        merged.update(provider.models)
        resolved[name] = merged
        return merged

    providers = {}
    for name, provider in parsed.providers.items():
        models = models_of(name, ())
        globs = sorted(
            ((key, entry) for key, entry in models.items() if _GLOB_CHARS.search(key)),
            key=lambda item: -len(_GLOB_CHARS.sub("", item[0])),
        )
        exact = {key: entry for key, entry in models.items() if not _GLOB_CHARS.search(key)}
        providers[name] = ProviderPrices(name, provider.date, provider.source, exact,
                                         tuple(globs))
    return PriceTable(parsed.version, providers)


def price_for(provider: str, model: str | None, override: Price | None = None) -> Price | None:
    """The price of `model` on `provider`, or None when the table does not know it.

    `override` (a backend's configured `PriceOverride`) wins over the table. On Bedrock, a
    geographic inference profile (`us.`, `eu.`, ...) applies the model's `geo_premium`.
    """
    if override is not None:
        return override
    return _table_price(provider, model) if model else None


@functools.lru_cache(maxsize=4096)
def _table_price(provider: str, model: str) -> Price | None:
    """The shipped table's price (prices are immutable, so lookups are cached)."""
    prices = table().providers.get(provider)
    if prices is None:
        return None
    found = prices.lookup(model)
    if found is None:
        return None
    entry, geo = found
    price = Price.model_validate(entry.model_dump(exclude={"geo_premium"}))
    if geo and entry.geo_premium:
        price = price.scaled(entry.geo_premium)
    return price


class UsageLike(Protocol):
    """Token counts with OpenAI semantics: `prompt_tokens` is ALL input, cached included."""

    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def cached_tokens(self) -> int: ...


def cost_usd(price: Price, usage: UsageLike | Mapping[str, Any]) -> float:
    """What a request cost in USD.

    `usage` (an object or a mapping) has OpenAI semantics: `prompt_tokens` counts every input
    token; `cached_tokens` (cache reads) and `cache_write_tokens` (cache writes, optional) are
    parts of it, billed at `cached_input` and `cache_write`; the rest at `input`;
    `completion_tokens` at `output`. An Anthropic usage (`input_tokens` excludes the cache)
    must be converted first: prompt_tokens = input + cache_read + cache_creation tokens.
    Counts that do not add up (cached + writes > prompt) bill no uncached input.
    """
    prompt = _count(usage, "prompt_tokens")
    cached = _count(usage, "cached_tokens")
    writes = _count(usage, "cache_write_tokens")
    completion = _count(usage, "completion_tokens")
    rates = price.rates_for(prompt)
    uncached = max(prompt - cached - writes, 0)
    total = (
        uncached * rates.input
        + cached * (rates.input if rates.cached_input is None else rates.cached_input)
        + writes * (rates.input if rates.cache_write is None else rates.cache_write)
        + completion * rates.output
    )
    return total / PER_MILLION


def _count(usage: Any, name: str) -> int:
    value = usage.get(name, 0) if isinstance(usage, Mapping) else getattr(usage, name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
