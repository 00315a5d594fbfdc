"""Checks a built modelway image: its metadata, then the gateway run from it.

Usage: python3 deploy/docker/ci_check.py IMAGE (deploy/docker/ci-build.sh builds IMAGE first).
Standard library only; needs podman and buildah. Runs the image's own ENTRYPOINT/CMD as the
image's USER in a buildah working container (chroot isolation, host network; the listen address
narrowed to loopback), on a port the OS picks (MODELWAY_PORT=0), and runs the image's HEALTHCHECK
command inside it.
Prints one line per check and `N passed, N failed` last.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

RUN = ["buildah", "run", "--isolation", "chroot"]


def sh(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check)


def main(image: str) -> int:
    inspected = json.loads(sh("podman", "image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    results: list[tuple[str, bool, str]] = []

    def check(name: str, test: Callable[[], object]) -> None:
        try:
            outcome = test()
            ok, detail = (outcome is not False), ""
        except Exception as exc:  # a failed check, reported and counted
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append((name, ok, detail))
        print(f"image: {'ok  ' if ok else 'FAIL'} {name}" + (f" ({detail})" if detail else ""))

    user = config.get("User", "")
    command = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    # podman shows a docker-format image's HEALTHCHECK beside Config, docker inside it.
    healthcheck = (inspected.get("Healthcheck") or config.get("Healthcheck") or {}).get(
        "Test"
    ) or []
    env = dict(item.split("=", 1) for item in config.get("Env") or [])

    check(
        "USER is a numeric non-root UID:GID",
        lambda: _assert(re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user),
    )
    check(
        "ENTRYPOINT/CMD run `modelway run ... --host 0.0.0.0`",
        lambda: _assert(
            command[:2] == ["modelway", "run"]
            and command[command.index("--host") + 1] == "0.0.0.0",
            command,
        ),
    )
    check(
        "HEALTHCHECK is an exec-form python command on /healthz",
        lambda: _assert(
            healthcheck[:3] == ["CMD", "python", "-c"] and "/healthz" in healthcheck[3], healthcheck
        ),
    )
    check(
        "EXPOSE matches MODELWAY_PORT",
        lambda: _assert(
            list(config.get("ExposedPorts") or {}) == [f"{env.get('MODELWAY_PORT')}/tcp"], config
        ),
    )
    check(
        "the CA directory is a volume",
        lambda: _assert(list(config.get("Volumes") or {}) == [env.get("MODELWAY_CA_DIR")], config),
    )

    container = sh("buildah", "from", "--pull-never", image).stdout.strip()
    try:
        check(
            "the container runs as the image's USER",
            lambda: _assert(
                sh(*RUN, container, "--", "id", "-u").stdout.strip() == user.split(":")[0], user
            ),
        )
        _run_gateway(container, command, healthcheck, env, check)
    finally:
        sh("buildah", "rm", container, check=False)

    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _run_gateway(container, command, healthcheck, env, check) -> None:
    # The image's command, on a port the OS picks and on loopback only (the host's network).
    command = list(command)
    command[command.index("--host") + 1] = "127.0.0.1"
    gateway = subprocess.Popen(
        [*RUN, "--env", "MODELWAY_PORT=0", container, "--", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = 0
    try:
        port = _listening_port(gateway)
        check("the gateway starts from ENTRYPOINT/CMD", lambda: _assert(port, port))

        def healthy() -> bool:
            run = [*RUN, "--env", f"MODELWAY_PORT={port}", container, "--", *healthcheck[1:]]
            return sh(*run, timeout=60, check=False).returncode == 0

        check("the image's HEALTHCHECK passes", lambda: _assert(healthy(), "unhealthy"))
        check("a chat completion from the mock model", lambda: _chat(port))
        check(
            "the CA is written to the volume, key owner-only",
            lambda: _assert(
                "-rw------- "
                in sh(
                    *RUN, container, "--", "ls", "-l", env["MODELWAY_CA_DIR"] + "/mitmproxy-ca.pem"
                ).stdout,
                "no CA",
            ),
        )

        # buildah run answers SIGTERM with SIGKILL to its child: signal the gateway itself.
        def stop() -> None:
            os.kill(_gateway_pid(gateway.pid), signal.SIGTERM)
            _assert(gateway.wait(timeout=60) == 0, f"exit status {gateway.returncode}")

        check("SIGTERM stops the gateway cleanly", stop)
        check(
            "the HEALTHCHECK fails once it has stopped",
            lambda: _assert(not healthy(), "still healthy"),
        )
    finally:
        if gateway.poll() is None:
            _kill_tree(gateway.pid)
            gateway.kill()
            gateway.wait(timeout=30)
        if gateway.stderr is not None:
            gateway.stderr.close()


def _listening_port(process: subprocess.Popen[str], timeout: float = 120) -> int:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        match = re.search(r"listening on http://[^ ]*:(\d+)", line)
        if match:
            return int(match.group(1))
    raise AssertionError("the gateway did not start:\n" + "".join(seen))


def _descendants(root: int) -> list[tuple[int, bytes]]:
    """(pid, argv[0]) of every process under `root`, parents first."""
    found: list[tuple[int, bytes]] = []
    queue = [root]
    while queue:
        pid = queue.pop(0)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                argv0 = cmdline.read().split(b"\0")[0]
            # A Go program (buildah) forks from any of its threads: read every thread's children.
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    queue.extend(int(child) for child in children.read().split())
        except OSError:
            continue
        if pid != root:
            found.append((pid, argv0))
    return found


def _gateway_pid(root: int) -> int:
    """The gateway's Python process under `root` (buildah run -> chroot helper -> gateway)."""
    for pid, argv0 in _descendants(root):
        if os.path.basename(argv0).startswith(b"python"):
            return pid
    raise AssertionError("the gateway's process was not found")


def _kill_tree(root: int) -> None:
    """SIGKILL what this check started: buildah's children first (it does not pass signals on)."""
    for pid, _ in reversed(_descendants(root)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _chat(port: int) -> None:
    body = {"model": "mock", "messages": [{"role": "user", "content": "hello"}]}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as answer:
        _assert(json.load(answer)["choices"][0]["message"]["content"], "no content")


def _assert(condition: object, detail: object) -> None:
    if not condition:
        raise AssertionError(str(detail))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
