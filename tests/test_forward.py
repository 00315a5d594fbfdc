"""Forward-proxy mode end to end: unmodified official SDKs calling the providers' real hostnames.

The `openai`, `anthropic` and `google-genai` SDKs are configured only with the proxy (with
its credentials) and the gateway's CA, and call https://api.openai.com,
https://api.anthropic.com and https://generativelanguage.googleapis.com. The configuration
routes those hosts to backends whose base URLs are local upstream servers on 127.0.0.1
speaking each provider's wire format, so no real host is ever resolved or contacted (the
tests check both: a DNS guard on `socket.getaddrinfo`, and mitmproxy's own `server_connect`
events). Checked: interception and answers for each SDK (streamed or not), key swap and
passthrough, a guard and the enrichment policy on native traffic, the access log, proxy
authentication (407), unmatched traffic denied or passed, and a non-LLM HTTPS host tunnelled
without decryption.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from mitmproxy import connection

from modelway.testing.fake_anthropic import AnthropicMessages
from modelway.testing.fake_gemini import api_key_check, gemini_behavior
from modelway.testing.fake_openai import openai_behavior
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from modelway.testing.wait import wait_until

PROXY_USER, PROXY_PASSWORD = "team", "s3cret-proxy"
OPENAI_KEY = "sk-real-openai-backend-11"
ANTHROPIC_KEY = "sk-ant-real-backend-22"
GEMINI_KEY = "AIza-real-backend-33"
PLACEHOLDERS = {
    "openai": "sk-placeholder-openai",
    "anthropic": "sk-ant-placeholder",
    "gemini": "AIza-placeholder",
}
CLIENT_OWN_KEY = "sk-proj-client-own-key-44"
REAL_HOSTS = frozenset({"api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com"})
PLAIN_HOST = "127.0.0.2"  # an intercepted "LLM host" that is a local plain-HTTP server
ENRICH_TEXT = "Policy: answer briefly."
KNOWN_ANTHROPIC_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "metadata",
}
MODELS = {"openai": "gpt-test", "anthropic": "claude-test", "gemini": "gemini-test"}
SDKS = ("openai", "anthropic", "gemini")


# ------------------------------------------------------------------------ local servers


def guard_behavior(received: Received) -> Reply:
    """A webhook guard: rejects prompts that say FORBIDDEN, redacts 'secret' in answers."""
    check = received.json
    if check["stage"] == "request":
        if "FORBIDDEN" in json.dumps(check["messages"]):
            answer = {"action": "reject", "message": "blocked by the guard", "code": "guarded"}
            return Reply(body=json.dumps(answer).encode())
        return Reply(body=b'{"action": "pass"}')
    if "secret" in check["text"]:
        answer = {"action": "modify", "text": check["text"].replace("secret", "[redacted]")}
        return Reply(body=json.dumps(answer).encode())
    return Reply(body=b'{"action": "pass"}')


@dataclass
class TLSServer:
    """An HTTPS server on 127.0.0.1 with its own self-signed certificate (not the gateway's)."""

    cert_path: Path
    cert_der: bytes
    server: UpstreamServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.server.received]


def self_signed(directory: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tunnel.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tunnel-cert.pem", directory / "tunnel-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


def tunnel_answer(received: Received) -> Reply:
    return Reply(body=b"tunnel ok", headers={"content-type": "text/plain"})


@contextmanager
def tls_server(directory: Path) -> Iterator[TLSServer]:
    cert_path, key_path, der = self_signed(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    with UpstreamServer(tunnel_answer, tls=context) as server:
        yield TLSServer(cert_path, der, server)


# ------------------------------------------------------------------------ the gateway


class ConnectionRecorder:
    """A mitmproxy addon that records every server connection mitmproxy opens."""

    def __init__(self) -> None:
        self.addresses: list[tuple[str, int]] = []

    def server_connect(self, data: Any) -> None:
        server: connection.Server = data.server
        if server.address is not None:
            self.addresses.append((str(server.address[0]), int(server.address[1])))


@dataclass
class Upstreams:
    openai: UpstreamServer
    anthropic: UpstreamServer
    gemini: UpstreamServer
    guard: UpstreamServer
    plain: UpstreamServer

    @property
    def plain_paths(self) -> list[tuple[str, dict[str, str]]]:
        return [(r.path, r.headers) for r in self.plain.received]

    def llm(self) -> list[UpstreamServer]:
        return [self.openai, self.anthropic, self.gemini]

    def clear(self) -> None:
        for server in (*self.llm(), self.guard, self.plain):
            server.received.clear()


@dataclass
class Forward:
    gw: RunningGateway
    up: Upstreams
    ca_cert: Path
    config_path: Path
    config: dict[str, Any]
    log_path: Path
    recorder: ConnectionRecorder
    lookups: list[str]

    @property
    def proxy(self) -> str:
        return f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{self.gw.port}"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def log_records(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def log_record(self, request_id: str) -> dict[str, Any]:
        """The access-log line of `request_id` (written when mitmproxy finishes the flow)."""

        def find() -> dict[str, Any] | None:
            return next((r for r in self.log_records() if r["request_id"] == request_id), None)

        return wait_until(find, what=f"the access-log line of {request_id}")

    def reload(self, **gateway_settings: Any) -> None:
        config = json.loads(json.dumps(self.config))
        config["gateway"].update(gateway_settings)
        write_config(self.config_path.parent, yaml.safe_dump(config), self.config_path.name)
        self.gw.call(self.gw.server.reload())


def real_host_answer(received: Received) -> Reply:
    return Reply.json({"from": "the real host"})


@contextmanager
def upstreams() -> Iterator[Upstreams]:
    anthropic_behavior = AnthropicMessages(KNOWN_ANTHROPIC_FIELDS, api_key=ANTHROPIC_KEY)
    gemini = gemini_behavior(None, api_key_check(GEMINI_KEY))
    with (
        UpstreamServer(openai_behavior) as openai_up,
        UpstreamServer(anthropic_behavior) as anthropic_up,
        UpstreamServer(gemini) as gemini_up,
        UpstreamServer(guard_behavior) as guard,
        UpstreamServer(real_host_answer, host=PLAIN_HOST) as plain,
    ):
        yield Upstreams(openai_up, anthropic_up, gemini_up, guard, plain)


def gateway_config(up: Upstreams, directory: Path, closed_port: int) -> dict[str, Any]:
    policies = {
        "enrich": {"prepend": [{"role": "system", "content": ENRICH_TEXT}]},
        "webhook_guard": {
            "url": f"http://127.0.0.1:{up.guard.port}/check",
            "stages": ["request", "response"],
            "buffer_streams": True,
        },
    }
    names = ("openai", "anthropic", "gemini", "anthropic_api", "gemini_api", "enrich")
    plugins: dict[str, Any] = {name: None for name in (*names, "webhook_guard")}
    plugins["access_log"] = {"path": str(directory / "access.log")}

    def route(name: str, host: str, model: str, backend: str) -> dict[str, Any]:
        match = {"host": host, "model": model}
        return {"name": name, "match": match, "backend": backend, "policies": policies}

    return {
        "plugins": plugins,
        "gateway": {
            "mode": "forward",
            "ca_dir": str(directory / "ca"),
            "proxy_auth": f"{PROXY_USER}:{PROXY_PASSWORD}",
            "unmatched": "deny",
            "intercept_hosts": sorted(REAL_HOSTS | {PLAIN_HOST}),
            "shutdown_grace_seconds": 1,
        },
        "backends": {
            "openai": {"provider": "openai", "base_url": up.openai.url, "api_key": OPENAI_KEY},
            "openai_pass": {"provider": "openai", "base_url": up.openai.url, "auth": "passthrough"},
            "openai_down": {
                "provider": "openai",
                "base_url": f"http://127.0.0.1:{closed_port}/v1",
                "api_key": "sk-never-used",
            },
            "anthropic": {
                "provider": "anthropic",
                "base_url": f"http://127.0.0.1:{up.anthropic.port}",
                "api_key": ANTHROPIC_KEY,
            },
            "gemini": {
                "provider": "gemini",
                "base_url": f"http://127.0.0.1:{up.gemini.port}",
                "api_key": GEMINI_KEY,
            },
        },
        "routes": [
            {
                "name": "openai-pass",
                "match": {"host": "api.openai.com", "model": "passthrough-*"},
                "backend": "openai_pass",
            },
            {
                "name": "openai-failover",
                "match": {"host": "api.openai.com", "model": "failover-*"},
                "backend": "openai_down",
                "failover": [["openai"]],
            },
            route(
                "gemini-to-openai",
                "generativelanguage.googleapis.com",
                "gemini-via-openai",
                "openai",
            ),
            route("anthropic-to-gemini", "api.anthropic.com", "claude-via-gemini", "gemini"),
            route("openai", "api.openai.com", "gpt-*", "openai"),
            route("anthropic", "api.anthropic.com", "claude-*", "anthropic"),
            route("gemini", "generativelanguage.googleapis.com", "gemini-*", "gemini"),
        ],
    }


@contextmanager
def dns_guard(lookups: list[str]) -> Iterator[None]:
    """Fail (and record) any resolution of a real provider hostname in this process."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in REAL_HOSTS:
            lookups.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"{name} must not be resolved in tests")
        return real(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", guarded)
        yield


@pytest.fixture(scope="module")
def forward(tmp_path_factory: pytest.TempPathFactory, closed_port: int) -> Iterator[Forward]:
    directory = tmp_path_factory.mktemp("forward")
    lookups: list[str] = []
    with upstreams() as up, dns_guard(lookups):
        config = gateway_config(up, directory, closed_port)
        path = write_config(directory, yaml.safe_dump(config))
        with run_gateway(path, mode="forward") as gw:
            recorder = ConnectionRecorder()

            async def add_recorder() -> None:
                assert gw.server.master is not None
                gw.server.master.addons.add(recorder)

            gw.call(add_recorder())
            ca_cert = directory / "ca" / "mitmproxy-ca-cert.pem"
            yield Forward(
                gw, up, ca_cert, path, config, directory / "access.log", recorder, lookups
            )


@pytest.fixture
def fwd(forward: Forward) -> Iterator[Forward]:
    forward.up.clear()
    yield forward
    assert forward.lookups == [], "a real provider hostname was resolved"
    contacted = {host for host, _ in forward.recorder.addresses}
    assert not contacted & REAL_HOSTS, f"mitmproxy connected to a real host: {contacted}"


# ------------------------------------------------------------------------ the three SDKs


def openai_client(fwd: Forward, key: str = PLACEHOLDERS["openai"]) -> openai.OpenAI:
    http = openai.DefaultHttpxClient(proxy=fwd.proxy, verify=fwd.tls())
    return fwd.gw.closing(
        openai.OpenAI(
            api_key=key, base_url="https://api.openai.com/v1", http_client=http, max_retries=0
        )
    )


def anthropic_client(fwd: Forward) -> anthropic.Anthropic:
    http = anthropic.DefaultHttpxClient(proxy=fwd.proxy, verify=fwd.tls())
    return fwd.gw.closing(
        anthropic.Anthropic(
            api_key=PLACEHOLDERS["anthropic"],
            base_url="https://api.anthropic.com",
            http_client=http,
            max_retries=0,
        )
    )


def gemini_client(fwd: Forward) -> genai.Client:
    options = types.HttpOptions(
        base_url="https://generativelanguage.googleapis.com/",
        client_args={"proxy": fwd.proxy, "verify": fwd.tls()},
        async_client_args={"proxy": fwd.proxy, "verify": fwd.tls()},
    )
    return fwd.gw.closing(genai.Client(api_key=PLACEHOLDERS["gemini"], http_options=options))


def ask(fwd: Forward, sdk: str, text: str, *, stream: bool, request_id: str, **kw: Any) -> str:
    """The answer text one SDK gets for one user message, streamed or not."""
    asks: dict[str, Callable[..., str]] = {
        "openai": _ask_openai,
        "anthropic": _ask_anthropic,
        "gemini": _ask_gemini,
    }
    return asks[sdk](fwd, text, stream, {"x-request-id": request_id}, **kw)


def _ask_openai(
    fwd: Forward, text: str, stream: bool, headers: dict[str, str], model: str = "gpt-test"
) -> str:
    client = openai_client(fwd)
    messages: Any = [{"role": "user", "content": text}]
    if not stream:
        answer = client.chat.completions.create(
            model=model, messages=messages, extra_headers=headers
        )
        return answer.choices[0].message.content or ""
    chunks = client.chat.completions.create(
        model=model, messages=messages, stream=True, extra_headers=headers
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _ask_anthropic(
    fwd: Forward, text: str, stream: bool, headers: dict[str, str], model: str = "claude-test"
) -> str:
    client = anthropic_client(fwd)
    params: Any = {
        "model": model,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
        "extra_headers": headers,
    }
    if not stream:
        block = client.messages.create(**params).content[0]
        return block.text if block.type == "text" else ""
    with client.messages.stream(**params) as events:
        return "".join(events.text_stream)


def _ask_gemini(
    fwd: Forward, text: str, stream: bool, headers: dict[str, str], model: str = "gemini-test"
) -> str:
    client = gemini_client(fwd)
    config = types.GenerateContentConfig(http_options=types.HttpOptions(headers=headers))
    if not stream:
        return client.models.generate_content(model=model, contents=text, config=config).text or ""
    pieces = client.models.generate_content_stream(model=model, contents=text, config=config)
    return "".join(piece.text or "" for piece in pieces)


def upstream_of(fwd: Forward, sdk: str) -> UpstreamServer:
    return {"openai": fwd.up.openai, "anthropic": fwd.up.anthropic, "gemini": fwd.up.gemini}[sdk]


def enrichment_seen(sdk: str, body: dict[str, Any]) -> bool:
    """Whether the upstream request starts with the enrich policy's system text."""
    if sdk == "openai":
        return body["messages"][0] == {"role": "system", "content": ENRICH_TEXT}
    if sdk == "anthropic":
        return body.get("system") == ENRICH_TEXT
    return body.get("systemInstruction") == {"parts": [{"text": ENRICH_TEXT}]}


# ------------------------------------------------------------------------ interception


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("sdk", SDKS)
def test_sdk_calls_to_the_real_host_are_intercepted(fwd, sdk, stream):
    request_id = f"fwd-{sdk}-{'stream' if stream else 'whole'}"
    answer = ask(fwd, sdk, "hello from an unmodified app", stream=stream, request_id=request_id)
    assert answer == "echo: hello from an unmodified app"
    upstream = upstream_of(fwd, sdk)
    assert len(upstream.received) == 1
    received = upstream.received[0]
    assert enrichment_seen(sdk, received.json)
    assert [s for s in fwd.up.llm() if s is not upstream and s.received] == []
    record = fwd.log_record(request_id)
    assert (record["route"], record["backend"], record["status"]) == (sdk, sdk, 200)
    assert record["api"] == {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}[sdk]
    assert record["stream"] is stream
    assert record["model"] == MODELS[sdk]
    assert record["prompt_tokens"] and record["completion_tokens"]


def test_gateway_ca_is_in_the_configured_directory(fwd):
    cert = x509.load_pem_x509_certificate(fwd.ca_cert.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key_files = list(fwd.ca_cert.parent.glob("mitmproxy-ca.pem"))
    assert key_files and key_files[0].stat().st_mode & 0o077 == 0


def test_failover_to_another_backend_of_the_same_provider(fwd):
    answer = ask(
        fwd, "openai", "fail over", stream=True, request_id="fwd-failover", model="failover-1"
    )
    assert answer == "echo: fail over"
    record = fwd.log_record("fwd-failover")
    assert (record["route"], record["backend"], record["attempts"]) == (
        "openai-failover",
        "openai",
        2,
    )
    assert fwd.up.openai.last.headers["authorization"] == f"Bearer {OPENAI_KEY}"


@pytest.mark.parametrize(
    ("sdk", "model", "backend"),
    [("gemini", "gemini-via-openai", "openai"), ("anthropic", "claude-via-gemini", "gemini")],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_native_traffic_rerouted_to_another_provider(fwd, sdk, model, backend, stream):
    request_id = f"fwd-reroute-{sdk}-{stream}"
    answer = ask(fwd, sdk, "cross over", stream=stream, request_id=request_id, model=model)
    assert answer == "echo: cross over"
    assert [len(s.received) for s in fwd.up.llm()] == [
        int(backend == "openai"),
        0,
        int(backend == "gemini"),
    ]
    received = upstream_of(fwd, backend).last
    assert enrichment_seen(backend, received.json)
    assert fwd.log_record(request_id)["provider"] == backend


# ------------------------------------------------------------------------ keys


@pytest.mark.parametrize("sdk", SDKS)
def test_placeholder_key_is_swapped_for_the_backend_key(fwd, sdk):
    ask(fwd, sdk, "key check", stream=False, request_id=f"fwd-key-{sdk}")
    received = upstream_of(fwd, sdk).last
    expected = {
        "openai": ("authorization", f"Bearer {OPENAI_KEY}"),
        "anthropic": ("x-api-key", ANTHROPIC_KEY),
        "gemini": ("x-goog-api-key", GEMINI_KEY),
    }[sdk]
    assert received.headers[expected[0]] == expected[1]
    wire = json.dumps(received.headers) + received.body.decode()
    assert not any(placeholder in wire for placeholder in PLACEHOLDERS.values())


def test_clients_own_key_is_stripped_unless_passthrough(fwd):
    client = openai_client(fwd, key=CLIENT_OWN_KEY)
    messages: Any = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="gpt-test", messages=messages)
    stripped = fwd.up.openai.last
    assert stripped.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert CLIENT_OWN_KEY not in json.dumps(stripped.headers) + stripped.body.decode()
    client.chat.completions.create(model="passthrough-model", messages=messages)
    passed = fwd.up.openai.last
    assert passed.headers["authorization"] == f"Bearer {CLIENT_OWN_KEY}"
    assert not enrichment_seen("openai", passed.json)  # that route has no policies


# ------------------------------------------------------------------------ policies


@pytest.mark.parametrize("sdk", SDKS)
def test_guard_rejects_a_native_request_in_the_clients_shape(fwd, sdk):
    errors: dict[str, type[Exception]] = {
        "openai": openai.BadRequestError,
        "anthropic": anthropic.BadRequestError,
        "gemini": genai_errors.ClientError,
    }
    with pytest.raises(errors[sdk]) as info:
        ask(fwd, sdk, "this is FORBIDDEN", stream=False, request_id=f"fwd-guard-{sdk}")
    assert upstream_of(fwd, sdk).received == []
    error: Any = info.value
    if sdk == "gemini":
        assert (error.code, error.status, error.message) == (
            400,
            "INVALID_ARGUMENT",
            "blocked by the guard",
        )
    elif sdk == "anthropic":
        assert error.body == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "blocked by the guard"},
        }
    else:
        assert error.body["code"] == "guarded"
    record = fwd.log_record(f"fwd-guard-{sdk}")
    assert record["status"] == 400 and record["error"] == "guarded"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("sdk", SDKS)
def test_guard_edits_native_answers(fwd, sdk, stream):
    request_id = f"fwd-redact-{sdk}-{stream}"
    answer = ask(fwd, sdk, "tell me the secret", stream=stream, request_id=request_id)
    assert answer == "echo: tell me the [redacted]"
    checks = [r.json for r in fwd.up.guard.received]
    assert [c["stage"] for c in checks] == ["request", "stream" if stream else "response"]
    assert checks[0]["messages"][0] == {"role": "system", "content": ENRICH_TEXT}


# ------------------------------------------------------------------------ proxy auth


def connect(fwd: Forward, target: str, authorization: str | None) -> tuple[bytes, socket.socket]:
    """Send CONNECT to the proxy; the status line and the open socket."""
    sock = socket.create_connection(("127.0.0.1", fwd.gw.port), timeout=30)
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if authorization is not None:
        head += f"Proxy-Authorization: {authorization}\r\n"
    sock.sendall((head + "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(4096)
        if not piece:
            break
        data += piece
    return data.split(b"\r\n", 1)[0], sock


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization", [None, basic(PROXY_USER, "wrong")], ids=["none", "wrong-password"]
)
def test_clients_without_proxy_credentials_get_407(fwd, authorization):
    status, sock = connect(fwd, "api.openai.com:443", authorization)
    sock.close()
    assert status.split(b" ")[1] == b"407"
    status, sock = connect(fwd, "api.openai.com:443", basic(PROXY_USER, PROXY_PASSWORD))
    sock.close()
    assert status.split(b" ")[1] == b"200"


def test_sdk_without_proxy_credentials_is_refused(fwd):
    http = openai.DefaultHttpxClient(proxy=f"http://127.0.0.1:{fwd.gw.port}", verify=fwd.tls())
    client = fwd.gw.closing(openai.OpenAI(api_key="sk-x", http_client=http, max_retries=0))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "x"}]
        )
    assert fwd.up.openai.received == []


# ------------------------------------------------------------------------ unmatched traffic


def test_other_endpoints_pass_to_the_hosts_backend_with_the_key_swapped(fwd):
    """An unmodified app's `models.list()` and `files.list()` to api.openai.com reach the
    backend of that host's routes (not the passthrough one), with the gateway's key."""
    fwd.up.openai.received.clear()
    client = openai_client(fwd)
    models = client.models.list(extra_headers={"x-request-id": "fwd-models-list"})
    assert [m.id for m in models.data] == ["gpt-upstream"]
    assert client.files.list().data == []
    sent = fwd.up.openai.received
    assert [(r.method, r.path.split("?")[0]) for r in sent] == [
        ("GET", "/v1/models"),
        ("GET", "/v1/files"),
    ]
    assert all(r.headers["authorization"] == f"Bearer {OPENAI_KEY}" for r in sent)
    assert not any(p in str(r.headers) for r in sent for p in PLACEHOLDERS.values())
    record = fwd.log_record("fwd-models-list")
    assert (record["status"], record["backend"]) == (200, "openai")


def test_unrouted_model_is_denied_in_each_clients_shape(fwd):
    with pytest.raises(genai_errors.ClientError) as gemini_info:
        _ask_gemini(fwd, "x", False, {}, model="imagen-3")
    assert (gemini_info.value.code, gemini_info.value.status) == (403, "PERMISSION_DENIED")
    assert "imagen-3" in (gemini_info.value.message or "")
    with pytest.raises(anthropic.PermissionDeniedError) as anthropic_info:
        _ask_anthropic(fwd, "x", False, {}, model="other-model")
    body: Any = anthropic_info.value.body
    assert body["error"]["type"] == "permission_error"
    assert all(not s.received for s in fwd.up.llm())


def plain_get(fwd: Forward, path: str) -> tuple[int, bytes]:
    """A plain-HTTP request through the proxy (absolute-form) to the intercepted local host."""
    port = fwd.up.plain.port
    sock = socket.create_connection(("127.0.0.1", fwd.gw.port), timeout=30)
    head = (
        f"GET http://{PLAIN_HOST}:{port}{path} HTTP/1.1\r\nHost: {PLAIN_HOST}:{port}\r\n"
        f"Proxy-Authorization: {basic(PROXY_USER, PROXY_PASSWORD)}\r\n"
        f"Authorization: Bearer {CLIENT_OWN_KEY}\r\nx-request-id: plain-{path.strip('/')}\r\n"
        "Connection: close\r\n\r\n"
    )
    sock.sendall(head.encode())
    data = b""
    while piece := sock.recv(65536):
        data += piece
    sock.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), rest.partition(b"\r\n\r\n")[2]


def test_unmatched_deny_then_pass(fwd):
    status, body = plain_get(fwd, "/v1/files")
    assert status == 403
    assert json.loads(body)["error"]["code"] == "unmatched_denied"
    assert fwd.up.plain_paths == []
    fwd.reload(unmatched="pass")
    try:
        status, body = plain_get(fwd, "/v1/batches")
        with pytest.raises(openai.InternalServerError) as info:
            openai_client(fwd).chat.completions.create(
                model="unrouted-model", messages=[{"role": "user", "content": "x"}]
            )
    finally:
        fwd.reload(unmatched="deny")
    assert (status, json.loads(body)) == (200, {"from": "the real host"})
    [(path, headers)] = fwd.up.plain_paths
    assert path == "/v1/batches"
    assert headers["authorization"] == f"Bearer {CLIENT_OWN_KEY}"  # untouched
    assert "proxy-authorization" not in headers
    assert fwd.log_record("plain-v1/batches")["extra"] == {"unmatched": "passed"}
    # Passed on to the real api.openai.com: the DNS guard stopped it (and proves it is live).
    assert info.value.status_code == 502 and "must not be resolved" in info.value.message
    assert fwd.lookups == ["api.openai.com"]
    assert ("api.openai.com", 443) in fwd.recorder.addresses
    fwd.lookups.clear()
    fwd.recorder.addresses[:] = [a for a in fwd.recorder.addresses if a[0] not in REAL_HOSTS]


# ------------------------------------------------------------------------ other hosts


def test_non_llm_host_is_tunnelled_undecrypted(fwd, tmp_path):
    with tls_server(tmp_path) as server:
        target = f"127.0.0.1:{server.port}"
        status, sock = connect(fwd, target, basic(PROXY_USER, PROXY_PASSWORD))
        assert status.split(b" ")[1] == b"200"
        only_the_server = ssl.create_default_context(cafile=str(server.cert_path))
        with only_the_server.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            assert tls.getpeercert(binary_form=True) == server.cert_der
            request = f"GET /tunnel-private HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n"
            tls.sendall(request.encode() + b"\r\n")
            data = b""
            while piece := tls.recv(65536):
                data += piece
        status, sock = connect(fwd, target, basic(PROXY_USER, PROXY_PASSWORD))
        with pytest.raises(ssl.SSLCertVerificationError), sock:
            fwd.tls().wrap_socket(sock, server_hostname="127.0.0.1")  # the gateway CA: no
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"tunnel ok")
    assert server.paths == ["/tunnel-private"]
    assert ("127.0.0.1", server.port) in fwd.recorder.addresses  # it did go through the proxy
    assert not [r for r in fwd.log_records() if "tunnel" in r["path"]]
