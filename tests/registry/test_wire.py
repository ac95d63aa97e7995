"""The HTTP/1.1 transport under every registry client, against a server that writes raw
bytes: how answers are framed, when a connection is kept, reused or dropped, and what a
malformed or hostile answer becomes (an httpx error, never a hang or a traceback)."""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from regplan.registry import deadline
from regplan.registry.transport import _shared_default_context
from regplan.registry.wire import WireTransport
from tests.servers.net import LOOPBACK


@dataclass
class Exchange:
    """One request as the server read it (head and body), and the connection it came on."""

    head: bytes
    body: bytes
    connection: int


Answer = Callable[[Exchange, socket.socket], bool]  # writes the answer; False: close after


@dataclass
class RawServer:
    """Reads each request (Content-Length bodies only) and lets `answer` write raw bytes."""

    answer: Answer
    read_body: bool = True
    seen: list[Exchange] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock, self.connections), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        reader = sock.makefile("rb")
        try:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                body = b""
                lines = head.lower().split(b"\r\n")
                for line in lines:
                    if line.startswith(b"content-length:") and self.read_body:
                        body = reader.read(int(line.split(b":")[1]))
                if b"transfer-encoding: chunked" in lines:
                    while (size := int(reader.readline(), 16)) != 0:
                        body += reader.read(size)
                        reader.readline()
                    reader.readline()
                exchange = Exchange(head, body, number)
                self.seen.append(exchange)
                if not self.answer(exchange, sock):
                    return
        except OSError:
            return
        finally:
            reader.close()
            sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer, **kwargs: bool) -> RawServer:
        servers.append(RawServer(answer, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(transport=WireTransport(_shared_default_context())) as c:
        yield c


def reply(raw: bytes, keep: bool = True) -> Answer:
    def answer(_: Exchange, sock: socket.socket) -> bool:
        sock.sendall(raw)
        return keep

    return answer


OK_HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def test_answers_are_read_to_their_end_and_the_connection_kept(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    server = serve(reply(OK_HELLO))
    for _ in range(5):
        assert client.get(server.url + "/v2/").text == "hello"
    assert server.connections == 1


def test_connections_are_reused_when_descriptors_above_1024_are_open(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    """A run with many layouts and connections open has descriptors above select()'s
    limit; whether an idle connection is still open is asked all the same."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    fillers = [socket.socket() for _ in range(1100)]
    try:
        server = serve(reply(OK_HELLO))
        for _ in range(3):
            assert client.get(server.url).text == "hello"
        assert server.connections == 1
    finally:
        for filler in fillers:
            filler.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_head_answer_has_no_body_whatever_its_length_says(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    server = serve(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 209715200\r\n\r\n"))
    for _ in range(3):
        response = client.head(server.url + "/v2/r/blobs/x")
        assert response.headers["content-length"] == "209715200"
        assert response.content == b""
    assert server.connections == 1


def test_a_chunked_body_with_extensions_and_trailers_is_decoded(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    server = serve(reply(chunked))
    assert client.get(server.url).text == "hello world"
    assert client.get(server.url).text == "hello world"
    assert server.connections == 1


def test_interim_answers_are_skipped(serve: Callable[..., RawServer], client: httpx.Client) -> None:
    server = serve(reply(b"HTTP/1.1 100 Continue\r\n\r\n" + OK_HELLO))
    assert client.get(server.url).text == "hello"


def test_a_body_without_length_ends_with_the_connection(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    server = serve(reply(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", keep=False))
    assert client.get(server.url).text == "until the end"
    assert client.get(server.url).text == "until the end"
    assert server.connections == 2


def test_an_http_1_0_answer_is_not_kept(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    server = serve(reply(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
    response = client.get(server.url)
    assert (response.http_version, response.text) == ("HTTP/1.0", "hello")
    client.get(server.url)
    assert server.connections == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", "5 bytes into a 10-byte body"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello", "invalid Content-Length"),
        (b"ICY 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP status"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed response header"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\n", "malformed chunk size"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX",
            "chunk does not end",
        ),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", "line over 64 KiB"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Flood: aaaaaaaaaaaa\r\n" * 6000 + b"\r\n", "over 100 KiB"),
        (b"", "disconnected without sending a response"),
    ],
)
def test_a_malformed_answer_is_a_protocol_error(
    serve: Callable[..., RawServer], client: httpx.Client, raw: bytes, message: str
) -> None:
    server = serve(reply(raw, keep=False))
    with pytest.raises(httpx.RemoteProtocolError, match=message):
        client.get(server.url).read()


def test_a_connection_the_server_closed_while_idle_is_not_reused(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    server = serve(reply(OK_HELLO, keep=False))  # answers, then closes: keep-alive not honoured
    for _ in range(3):
        assert client.get(server.url).text == "hello"
    assert server.connections == 3


def test_a_request_the_server_dropped_on_a_reused_connection_is_sent_again(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    """The race a keep-alive timeout makes: the idle connection looked open, the server
    closed it as the request arrived. A body that can be resent is sent on a new one."""

    def answer(exchange: Exchange, sock: socket.socket) -> bool:
        if exchange.connection == 1 and len(server.seen) == 2:
            return False  # read the second request, close without a word
        sock.sendall(OK_HELLO)
        return True

    server = serve(answer)
    assert client.post(server.url, content=b"first").text == "hello"
    assert client.post(server.url, content=b"second").text == "hello"
    assert [e.body for e in server.seen] == [b"first", b"second", b"second"]
    assert server.connections == 2


def test_an_answer_before_the_whole_upload_is_what_the_caller_sees(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    """A registry refusing an upload (401, 413) answers and closes before taking the body:
    the caller gets that answer, not the broken pipe of the rest of the write."""
    refused = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    server = serve(reply(refused, keep=False), read_body=False)
    big = (b"x" * (1024 * 1024) for _ in range(64))
    response = client.put(server.url + "/upload", content=big)
    assert response.status_code == 413


def test_a_line_break_in_a_header_is_refused_before_anything_is_sent(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    server = serve(reply(OK_HELLO))
    with pytest.raises(httpx.LocalProtocolError, match="line break"):
        client.get(server.url, headers={"Authorization": "Bearer t\r\nX-Injected: 1"})
    assert server.seen == []


def test_a_chunked_upload_is_encoded(serve: Callable[..., RawServer], client: httpx.Client) -> None:
    server = serve(reply(OK_HELLO))
    response = client.put(server.url, content=iter([b"abc", b"", b"defg"]))
    assert response.text == "hello"
    assert b"transfer-encoding: chunked" in server.seen[0].head.lower()
    assert server.seen[0].body == b"abcdefg"


def test_a_trickled_answer_stops_at_the_request_deadline(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    """Each byte arrives well within the read timeout; the deadline bounds them together."""
    stop = threading.Event()

    def answer(_: Exchange, sock: socket.socket) -> bool:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 1000:
            if stop.wait(0.05):
                break
            sock.sendall(bytes([byte]))
        return False

    server = serve(answer)
    with deadline.until(time.monotonic() + 0.5), pytest.raises(httpx.ReadTimeout, match="deadline"):
        client.get(server.url, timeout=5.0)
    stop.set()


def test_a_refused_connection_is_a_connect_error(
    serve: Callable[..., RawServer], client: httpx.Client
) -> None:
    server = serve(reply(OK_HELLO))
    server.close()
    with pytest.raises(httpx.ConnectError) as refused:
        client.get(server.url)
    assert isinstance(refused.value.__cause__, ConnectionRefusedError)
