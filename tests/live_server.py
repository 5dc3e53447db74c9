"""A live ArticleQA server for the UI tests: uvicorn in a background thread on 127.0.0.1 and
a free port, over the given articles, started once per name and session.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]


@dataclass
class Live:
    url: str
    kb: object
    folder: Path
    server: object
    thread: threading.Thread


_LIVE: dict[str, Live] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(encoder, paths: list[str | Path], name: str = "main") -> Live:
    """One server per ``name`` over the articles in ``paths``, for the whole session (stopped
    at exit)."""
    if name in _LIVE:
        return _LIVE[name]
    import uvicorn

    from qa import ArticleQA
    from ui.server import create_app

    folder = Path(tempfile.mkdtemp(prefix="articleqa-ui-"))
    kb = ArticleQA(folder / "index", encoder=encoder)
    report = kb.add(paths, progress=False)
    assert not report.failed, report.failed
    port = free_port()
    app = create_app(kb, host="127.0.0.1", port=port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True, name=f"uvicorn-{name}")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    live = Live(f"http://127.0.0.1:{port}", kb, folder, server, thread)
    _LIVE[name] = live

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        kb.close()
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(stop)
    return live
