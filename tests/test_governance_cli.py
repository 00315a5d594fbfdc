"""`modelway keys ...` and `modelway spend` against a real gateway's admin API."""

from __future__ import annotations

import subprocess
import sys

from modelway.testing.gateway import run_gateway, write_config
from tests.governance_kit import ADMIN_KEY, ask, hashed


def cli(gw, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "modelway.cli", *args]
    if args[0] != "keys" or args[1] != "hash":
        command += ["--url", gw.url, "--admin-key", ADMIN_KEY] if gw else []
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)


def test_keys_and_spend_commands(tmp_path, upstream):
    path = write_config(tmp_path, f"""
        gateway: {{admin_keys: ["{ADMIN_KEY}"]}}
        plugins:
          openai: null
          admin_api: null
          access_log: {{enabled: false}}
          keys: {{teams: {{ops: {{}}}}}}
          budgets: null
        backends:
          up: {{provider: openai, base_url: "{upstream.url}", api_key: sk-gw, model: gpt-4o}}
        routes:
          - {{name: chat, match: {{model: "*"}}, backend: up}}
    """)
    with run_gateway(path) as gw:
        made = cli(gw, "keys", "create", "--consumer", "ci-bot", "--kind", "service",
                   "--team", "ops", "--rpm", "100", "--budget", "5", "--budget-window", "day",
                   "--meta", "owner=ops")
        assert made.returncode == 0, made.stderr
        secret = made.stdout.strip().splitlines()[-1]
        assert secret.startswith("mw-") and "shown once" in made.stderr
        assert ask(gw.url, "openai", secret, "gpt-test")[0] == 200
        listed = cli(gw, "keys", "list")
        assert "ci-bot" in listed.stdout and secret not in listed.stdout
        key_id = listed.stdout.split()[0]
        shown = cli(gw, "keys", "show", key_id)
        assert '"owner": "ops"' in shown.stdout and '"usd": 5.0' in shown.stdout
        spend = cli(gw, "spend", "--by", "team")
        assert spend.returncode == 0 and "ops" in spend.stdout and "(total)" in spend.stdout
        rotated = cli(gw, "keys", "rotate", key_id, "--grace", "60")
        assert rotated.returncode == 0
        new = rotated.stdout.strip().splitlines()[-1]
        assert ask(gw.url, "openai", secret, "gpt-test")[0] == 200  # the grace period
        assert ask(gw.url, "openai", new, "gpt-test")[0] == 200
        revoked = cli(gw, "keys", "revoke", key_id)
        assert revoked.returncode == 0 and '"state": "revoked"' in revoked.stdout
    hashed_line = cli(None, "keys", "hash", stdin="sk-alice\n").stdout.strip()
    assert hashed_line == hashed("sk-alice")


def test_a_wrong_admin_key_is_a_clear_error(tmp_path, upstream):
    path = write_config(tmp_path, f"""
        gateway: {{admin_keys: ["{ADMIN_KEY}"]}}
        plugins: {{openai: null, admin_api: null, keys: null, access_log: {{enabled: false}}}}
        backends: {{up: {{provider: openai, base_url: "{upstream.url}", api_key: sk}}}}
        routes: [{{match: {{model: "*"}}, backend: up}}]
    """)
    with run_gateway(path) as gw:
        done = subprocess.run([sys.executable, "-m", "modelway.cli", "keys", "list", "--url",
                               gw.url, "--admin-key", "wrong"], capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 1 and "HTTP 401" in done.stderr
