"""Reading a trial's metrics endpoint in the local runtime.

Covers: the endpoint's text is returned; a trial that is not serving, or that hangs up in
the middle of its answer (a process exiting while it is scraped), gives nothing to read
instead of an error that would end the sweep.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from lrsweep.runtime.local import read_endpoint

BODY = b"lrsweep_trial_step 3\n"


def _serve_once(server: socket.socket, answer: bytes) -> None:
    connection, _ = server.accept()
    with connection:
        connection.recv(65536)
        connection.sendall(answer)


@pytest.fixture
def endpoint() -> Iterator[tuple[socket.socket, str]]:
    server = socket.create_server(("127.0.0.1", 0))
    with server:
        yield server, f"http://127.0.0.1:{server.getsockname()[1]}/"


def _answering(endpoint: tuple[socket.socket, str], answer: bytes) -> str | None:
    server, url = endpoint
    thread = threading.Thread(target=_serve_once, args=(server, answer), daemon=True)
    thread.start()
    try:
        return read_endpoint(url)
    finally:
        thread.join(timeout=10)


def test_the_endpoints_text_is_read(endpoint: tuple[socket.socket, str]) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    assert _answering(endpoint, answer) == BODY.decode()


def test_an_answer_cut_off_midway_gives_nothing_to_read(
    endpoint: tuple[socket.socket, str],
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 29070\r\n\r\n" + BODY
    assert _answering(endpoint, answer) is None


def test_a_hang_up_before_any_answer_gives_nothing_to_read(
    endpoint: tuple[socket.socket, str],
) -> None:
    assert _answering(endpoint, b"") is None


def test_an_endpoint_nobody_serves_gives_nothing_to_read() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    assert read_endpoint(f"http://127.0.0.1:{port}/") is None
