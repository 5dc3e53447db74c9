"""`articleqa chat`: registered into the `articleqa` CLI through the ``articleqa.commands``
entry-point group (qa/ never imports ui/). Gradio and uvicorn load only when the command runs.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "articles"


def sample_articles() -> Path:
    """The sample folder as `articleqa index samples/articles` names it from the repository
    (relative to the working directory when inside it), so the two never duplicate."""
    if not SAMPLES.is_dir():
        raise ValueError(f"{SAMPLES} is missing (the samples ship with the source tree)")
    return Path(os.path.relpath(SAMPLES)) if SAMPLES.is_relative_to(Path.cwd()) else SAMPLES


def register(subparsers, *parents: argparse.ArgumentParser) -> None:
    """Add `chat` to the CLI, with the options shared by every command (``parents``)."""
    chat = subparsers.add_parser(
        "chat", parents=list(parents), help="open the chat in a browser (HTTP API included)",
        description="Serve the chat at http://HOST:PORT/ with POST /api/ask, GET /healthz and "
        "OpenAPI docs at /docs. Binds 127.0.0.1 unless --host says otherwise.")
    chat.add_argument("--host", default="127.0.0.1",
                      help="address to bind (default: %(default)s; 0.0.0.0 exposes it)")
    chat.add_argument("--port", type=int, default=7860, help="default: %(default)s")
    chat.add_argument("--auth", metavar="USER:PASS", help="require HTTP basic auth")
    chat.add_argument("--samples", action="store_true",
                      help="index the bundled sample articles first")
    chat.set_defaults(run=cmd_chat)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_chat(args: argparse.Namespace) -> int:
    from qa.cli import index_from_args
    from ui.server import parse_auth, serve

    auth = parse_auth(args.auth)
    kb = index_from_args(args)
    if args.samples:
        report = kb.add([sample_articles()], progress=False)
        print(f"samples: {len(report.added)} added, {len(report.updated)} updated, "
              f"{len(report.unchanged)} unchanged, {len(report.failed)} failed")
    print(f"reader: {kb.reader.name}")  # loaded now, not on the first question
    if not _loopback(args.host) and not auth:
        print(f"warning: serving on {args.host} without --auth: anyone who can reach this "
              "machine can read and change the library", file=sys.stderr)
    print(f"ArticleQA chat: http://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:"
          f"{args.port}/  ({len(kb)} articles in {kb.location}; API docs at /docs; Ctrl-C stops)",
          flush=True)
    serve(kb, host=args.host, port=args.port, auth=auth)
    return 0
