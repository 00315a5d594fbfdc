"""A/B splits: weights hold over 10,000 simulated users, and a user's variant never changes.

The first half drives the router's own functions (`cohort_value`, `point`, `pick`) and its
`modelway_plan` hook with request contexts over a real resolved configuration; the second
half goes through a real gateway with the official openai SDK against two real upstreams.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from modelway.canonical import CanonicalRequest, Operation
from modelway.context import ClientInfo, RequestContext
from modelway.plugins.traffic import router
from modelway.runtime import Gateway, load_gateway
from modelway.testing.fake_openai import openai_completion, openai_stream_chunks
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer

USERS = 10_000
TOLERANCE = 0.02  # two percentage points
FORCE = "x-modelway-variant"


# ----------------------------------------------------------------------------- simulated users


def split_config(weights: dict[str, float], cohort: str | None = "header:x-user-id") -> str:
    split: dict[str, Any] = {
        "targets": [{"backend": name, "weight": weight} for name, weight in weights.items()],
        "force_header": FORCE,
    }
    if cohort is not None:
        split["cohort"] = cohort
    config = {
        "plugins": {"mock": None, "health": None},
        "backends": {name: {"provider": "mock"} for name in weights},
        "routes": [{"name": "ab", "match": {"model": "ab-model"}, "split": split}],
    }
    return yaml.safe_dump(config, sort_keys=False)


def resolved(tmp_path: Path, weights: dict[str, float], cohort: str | None = None) -> Gateway:
    text = split_config(weights, cohort) if cohort else split_config(weights)
    return load_gateway(str(write_config(tmp_path, text, f"{len(list(tmp_path.iterdir()))}.yaml")))


def context(
    gateway: Gateway,
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    key: str | None = None,
) -> RequestContext:
    payload = {"model": "ab-model", "messages": [{"role": "user", "content": "hi"}], **(body or {})}
    return RequestContext(
        id="test",
        method="POST",
        path="/v1/chat/completions",
        host="127.0.0.1",
        headers=headers or {},
        client=ClientInfo("127.0.0.1", "test", key),
        request=CanonicalRequest(Operation.CHAT, "ab-model", payload, False, False),
        gateway=gateway,
    )


def variant(gateway: Gateway, ctx: RequestContext) -> str:
    route = gateway.routes[0]
    plan = router.modelway_plan(ctx, route)
    assert plan is not None
    chosen = plan.attempts[0].variant
    assert chosen is not None
    return chosen


def user_variant(gateway: Gateway, user: str, **headers: str) -> str:
    return variant(gateway, context(gateway, {"x-user-id": user, **headers}))


def shares(assigned: dict[str, str] | list[str]) -> dict[str, float]:
    values = list(assigned.values()) if isinstance(assigned, dict) else assigned
    return {name: count / len(values) for name, count in Counter(values).items()}


def assert_matches(observed: dict[str, float], weights: dict[str, float]) -> None:
    total = sum(weights.values())
    for name, weight in weights.items():
        expected = weight / total
        assert abs(observed.get(name, 0.0) - expected) <= TOLERANCE, (name, observed, weights)
    assert set(observed) <= {n for n, w in weights.items() if w > 0}


SPLITS = [
    {"a": 90, "b": 10},
    {"a": 50, "b": 50},
    {"a": 50, "b": 30, "c": 20},
    {"a": 1, "b": 1, "c": 1},
]


@pytest.mark.parametrize("weights", SPLITS, ids=lambda w: "/".join(f"{v:g}" for v in w.values()))
def test_sticky_split_matches_the_weights_and_never_moves_a_user(tmp_path, weights):
    gateway = resolved(tmp_path, weights)
    users = [f"user-{n}" for n in range(USERS)]
    first = {user: user_variant(gateway, user) for user in users}
    assert_matches(shares(first), weights)
    for repeat in range(2):  # the same users again, with other headers and bodies around them
        again = {
            user: variant(
                gateway,
                context(
                    gateway,
                    {"x-user-id": user, "x-request-id": f"r{repeat}", "x-other": user[::-1]},
                    {"temperature": repeat / 2, "user": f"other-{repeat}"},
                    key=f"sk-{repeat}",
                ),
            )
            for user in users
        }
        assert again == first


@pytest.mark.parametrize("weights", SPLITS[:3], ids=["90/10", "50/50", "50/30/20"])
def test_requests_without_a_cohort_value_are_split_randomly_by_weight(tmp_path, weights):
    gateway = resolved(tmp_path, weights)
    picks = [variant(gateway, context(gateway)) for _ in range(USERS)]
    assert_matches(shares(picks), weights)


def test_an_unkeyed_client_is_not_pinned(tmp_path):
    gateway = resolved(tmp_path, {"a": 50, "b": 50})
    assert len({variant(gateway, context(gateway)) for _ in range(200)}) == 2


@pytest.mark.parametrize(
    ("cohort", "make"),
    [
        ("field:user", lambda user: {"body": {"user": user}}),
        ("key", lambda user: {"key": f"sk-{user}"}),
        ("header:X-Tenant", lambda user: {"headers": {"x-tenant": user}}),
    ],
)
def test_every_cohort_kind_is_sticky_and_weighted(tmp_path, cohort, make):
    weights = {"a": 90, "b": 10}
    gateway = resolved(tmp_path, weights, cohort)
    users = [f"u{n}" for n in range(USERS)]
    first = {u: variant(gateway, context(gateway, **make(u))) for u in users}
    assert_matches(shares(first), weights)
    assert all(variant(gateway, context(gateway, **make(u))) == first[u] for u in users[:2000])


def test_cohort_value_reads_header_field_and_key(tmp_path):
    gateway = resolved(tmp_path, {"a": 1, "b": 1})
    ctx = context(gateway, {"x-user-id": "42"}, {"user": "alice"}, key="sk-k")
    assert router.cohort_value(ctx, "header:X-User-Id") == "42"
    assert router.cohort_value(ctx, "field:user") == "alice"
    assert router.cohort_value(ctx, "key") == "sk-k"
    assert router.cohort_value(ctx, "header:x-missing") is None
    assert router.cohort_value(context(gateway, {"x-user-id": ""}), "header:x-user-id") is None


def test_point_is_stable_and_uniform():
    points = [router.point(f"user-{n}") for n in range(USERS)]
    assert points == [router.point(f"user-{n}") for n in range(USERS)]
    assert all(0 <= p < 1 for p in points)
    deciles = Counter(int(p * 10) for p in points)
    assert all(abs(deciles[d] / USERS - 0.1) <= TOLERANCE for d in range(10))


def test_pick_follows_the_weight_line_and_skips_zero_weights(tmp_path):
    gateway = resolved(tmp_path, {"a": 3, "off": 0, "b": 1})
    targets = gateway.routes[0].targets
    names = [router.pick(targets, p / 100).backend.name for p in range(100)]
    assert names == ["a"] * 75 + ["b"] * 25
    assert router.pick(targets, 0.999999).backend.name == "b"


def test_raising_a_canary_only_moves_users_onto_it(tmp_path):
    """From 10% to 20%, canary users stay; only former control users move, none back."""
    small = resolved(tmp_path, {"control": 90, "canary": 10})
    large = resolved(tmp_path, {"control": 80, "canary": 20})
    users = [f"user-{n}" for n in range(USERS)]
    before = {u: user_variant(small, u) for u in users}
    after = {u: user_variant(large, u) for u in users}
    assert all(after[u] == "canary" for u in users if before[u] == "canary")
    moved = sum(before[u] != after[u] for u in users) / USERS
    assert abs(moved - 0.10) <= TOLERANCE


def test_the_force_header_picks_a_variant_by_backend_name(tmp_path):
    gateway = resolved(tmp_path, {"a": 50, "b": 50})
    users = [f"user-{n}" for n in range(200)]
    for user in users:
        assert user_variant(gateway, user, **{FORCE: "a"}) == "a"
        assert user_variant(gateway, user, **{FORCE: "b"}) == "b"
        assert user_variant(gateway, user, **{FORCE: "nope"}) == user_variant(gateway, user)


def test_without_force_header_config_the_header_is_ignored(tmp_path):
    config = yaml.safe_load(split_config({"a": 50, "b": 50}))
    del config["routes"][0]["split"]["force_header"]
    gateway = load_gateway(str(write_config(tmp_path, yaml.safe_dump(config))))
    users = [f"user-{n}" for n in range(200)]
    natural = {u: user_variant(gateway, u) for u in users}
    assert {u: user_variant(gateway, u, **{FORCE: "b"}) for u in users} == natural
    assert set(natural.values()) == {"a", "b"}


# ----------------------------------------------------------------------------- the gateway


def answering(name: str) -> Any:
    def behave(received: Received) -> Reply:
        request = received.json
        if request.get("stream"):
            return Reply(
                headers={"content-type": "text/event-stream"},
                chunks=openai_stream_chunks(request, ["from", name]),
            )
        return Reply(body=json.dumps(openai_completion(request, f"from {name}")).encode())

    return behave


@contextmanager
def ab_gateway(tmp_path: Path) -> Iterator[tuple[RunningGateway, dict[str, UpstreamServer], Path]]:
    log = tmp_path / "access.log"
    with ExitStack() as stack:
        servers = {n: stack.enter_context(UpstreamServer(answering(n))) for n in ("a", "b")}
        config = {
            "plugins": {"openai": None, "access_log": {"path": str(log)}},
            "backends": {
                n: {"provider": "openai", "base_url": s.url, "api_key": "sk-b"}
                for n, s in servers.items()
            },
            "routes": [
                {
                    "name": "ab",
                    "match": {"model": "ab-model"},
                    "split": {
                        "cohort": "header:x-user-id",
                        "force_header": FORCE,
                        "targets": [{"backend": "a", "weight": 50}, {"backend": "b", "weight": 50}],
                    },
                }
            ],
        }
        path = write_config(tmp_path, yaml.safe_dump(config, sort_keys=False))
        gw = stack.enter_context(run_gateway(path))
        yield gw, servers, log


def client(gw: RunningGateway) -> openai.OpenAI:
    return gw.resource(
        "openai",
        lambda: openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0, timeout=30),
    )


def ask(gw: RunningGateway, headers: dict[str, str], stream: bool = False) -> tuple[str, str]:
    """(x-modelway-variant, the answer's text) for one request."""
    raw = client(gw).chat.completions.with_raw_response.create(
        model="ab-model",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=headers,
        stream=stream,
    )
    answer = raw.parse()
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
    else:
        text = answer.choices[0].message.content
    assert raw.headers["x-modelway-backend"] == raw.headers["x-modelway-variant"]
    return raw.headers["x-modelway-variant"], text


def test_the_same_user_always_lands_on_the_same_upstream(tmp_path):
    with ab_gateway(tmp_path) as (gw, servers, log):
        seen: dict[str, set[str]] = {}
        for round_ in range(3):
            for n in range(16):
                user = f"user-{n}"
                name, text = ask(gw, {"x-user-id": user}, stream=(n + round_) % 2 == 1)
                assert text == f"from {name}"  # the header names the upstream that answered
                seen.setdefault(user, set()).add(name)
        received = {n: len(s.received) for n, s in servers.items()}
    assert all(len(names) == 1 for names in seen.values()), seen
    assert {next(iter(names)) for names in seen.values()} == {"a", "b"}
    per_variant = Counter(next(iter(names)) for names in seen.values())
    assert received == {n: 3 * per_variant[n] for n in ("a", "b")}
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 48
    assert all(r["variant"] == r["backend"] and r["variant"] in {"a", "b"} for r in records)


def test_requests_without_the_cohort_key_are_spread_over_the_variants(tmp_path):
    with ab_gateway(tmp_path) as (gw, servers, _):
        names = Counter(ask(gw, {})[0] for _ in range(40))
    assert set(names) == {"a", "b"}
    assert {n: len(s.received) for n, s in servers.items()} == dict(names)


def test_the_force_header_overrides_the_cohort(tmp_path):
    with ab_gateway(tmp_path) as (gw, _, _):
        users = [f"user-{n}" for n in range(8)]
        natural = {u: ask(gw, {"x-user-id": u})[0] for u in users}
        for user, name in natural.items():
            other = "b" if name == "a" else "a"
            assert ask(gw, {"x-user-id": user, FORCE: other}) == (other, f"from {other}")
            assert ask(gw, {"x-user-id": user, FORCE: "unknown"})[0] == name
            assert ask(gw, {"x-user-id": user})[0] == name
