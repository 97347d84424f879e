"""`jupyter lab` (a core dependency) starts headless and serves the notebooks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the whole file: docs/development.md, Testing

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
STARTUP_S = 180  # it took 81 s here with 8 test suites sharing 2 cores


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_jupyter_lab_starts_headless_and_serves_the_notebooks(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--IdentityProvider.token=", "--ServerApp.password=",
               f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.root_dir={NOTEBOOKS}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    # its own runtime and config folders: no other server's files, nothing left in the home folder
    environment = os.environ | {"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                                "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    log = (tmp_path / "jupyter.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        status = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, _ = get(f"{base}/api/status")
            except OSError:  # not listening yet
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, (f"no answer from /api/status within {STARTUP_S} s (exit {server.poll()}):\n"
                               + (tmp_path / "jupyter.log").read_text(errors="replace")[-3000:])

        status, body = get(f"{base}/api/contents")
        assert status == 200
        served = {item["name"] for item in json.loads(body)["content"] if item["type"] == "notebook"}
        assert served == {path.name for path in NOTEBOOKS.glob("*.ipynb")} and served

        status, body = get(f"{base}/lab")
        assert status == 200 and b"JupyterLab" in body
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
