"""artjax.serve.protocol against idle, slow and oversized clients (issue #47 items 1 and 9),
on a real uvicorn server with a minimal app (no model needed)."""

import socket
import threading
import time

import pytest


async def _app(scope, receive, send):
  if scope["type"] != "http":
    return
  await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
  await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def server(monkeypatch):
  import uvicorn
  from artjax.serve import MAX_HEADER_BYTES, protocol
  monkeypatch.setattr(protocol, "HEADER_TIMEOUT_S", 0.6)
  sock = socket.socket()
  sock.bind(("127.0.0.1", 0))
  config = uvicorn.Config(_app, log_level="warning", http=protocol.GuardedH11Protocol,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_keep_alive=5)
  srv = uvicorn.Server(config)
  srv.install_signal_handlers = lambda: None
  t = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
  t.start()
  while not srv.started:
    time.sleep(0.01)
  yield sock.getsockname()
  srv.should_exit = True
  t.join(10)


def _closed_within(s, seconds) -> bool:
  """True when the server closes `s` (recv returns b"") within `seconds`."""
  s.settimeout(seconds)
  try:
    while True:
      if not s.recv(4096):
        return True
  except socket.timeout:
    return False
  except ConnectionResetError:
    return True


def _get(addr, head: bytes) -> bytes:
  with socket.create_connection(addr) as s:
    s.sendall(head)
    s.settimeout(5)
    out = b""
    while b"\r\n\r\n" not in out:
      chunk = s.recv(4096)
      if not chunk:
        break
      out += chunk
    return out


def test_idle_and_slowloris_connections_are_closed(server):
  idle = socket.create_connection(server)
  assert _closed_within(idle, 3)                                  # sent nothing: closed
  idle.close()
  slow = socket.create_connection(server)
  slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
  t0 = time.perf_counter()
  closed = False
  while time.perf_counter() - t0 < 3 and not closed:            # one header byte at a time
    try:
      slow.sendall(b"X")
    except OSError:
      closed = True
      break
    closed = _closed_within(slow, 0.2)
  assert closed and time.perf_counter() - t0 < 2.5
  slow.close()


def test_keep_alive_then_a_slow_second_head_is_closed(server):
  s = socket.create_connection(server)
  s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
  s.settimeout(5)
  assert s.recv(4096).startswith(b"HTTP/1.1 200")
  s.sendall(b"GET / HTTP/1.1\r\n")                                # then nothing more
  assert _closed_within(s, 3)
  s.close()


@pytest.mark.parametrize("size", [20 * 1024, 60 * 1024])
def test_oversized_heads_are_431_however_they_arrive(server, size):
  one = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
  assert _get(server, one).startswith(b"HTTP/1.1 431")          # one header, one read
  many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
      b"X-%d: %s\r\n" % (i, b"b" * 100) for i in range(size // 100)) + b"\r\n"
  assert _get(server, many).startswith(b"HTTP/1.1 431")         # many small headers
  assert _get(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200")
