"""A webhook receiver on 127.0.0.1 that checks every signature, for the webhook suites."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gateway.notify import SIGNATURE_HEADER, verify_signature


@dataclass
class Receiver:
    """Answers with ``statuses`` in turn, then 204 for a good signature and 401 for a bad one,
    and keeps what it got with whether the signature verified under ``secret`` at ``now()``."""

    now: Callable[[], datetime]
    secret: str = ""
    statuses: list[int] = field(default_factory=list)
    got: list[tuple[dict[str, str], bytes, bool]] = field(default_factory=list)
    url: str = ""


@contextmanager
def receiving(now: Callable[[], datetime]) -> Iterator[Receiver]:
    """A receiver listening on a free port of 127.0.0.1 until the block ends."""
    state = Receiver(now)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            signed = verify_signature(state.secret, body, self.headers[SIGNATURE_HEADER], now=state.now())
            state.got.append((dict(self.headers.items()), body, signed))
            self.send_response(state.statuses.pop(0) if state.statuses else (204 if signed else 401))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/veilbox"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
