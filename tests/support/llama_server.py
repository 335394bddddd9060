"""Start and stop a real ``llama_cpp.server`` on 127.0.0.1 for tests and benchmarks.

The server runs in its own process (own session, so its children go with it), on a free port
picked by binding port 0, and is always stopped by its pid: ``with llama_server(gguf) as url:``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_pid(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group by its pid, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/v1/models", timeout=1.0).status_code in (200, 401, 403):
                return  # 401/403: up, but behind --api_key
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"llama_cpp.server not ready after {timeout_s:.0f}s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def llama_server(
    model: str | Path,
    n_ctx: int = 512,
    n_threads: int = 1,
    alias: str = "tiny",
    api_key: str | None = None,
    timeout_s: float = 60.0,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yield ``(base_url, process)`` of a server for ``model``; stopped by pid on exit."""
    port = free_port()
    log = Path(model).with_suffix(f".server-{port}.log")
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads),
        "--logits_all", "true", "--verbose", "false",
    ]  # fmt: skip
    if api_key:
        cmd += ["--api_key", api_key]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log, timeout_s)
        yield url, proc
    finally:
        stop_pid(proc)
