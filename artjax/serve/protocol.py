"""uvicorn's h11 protocol with the two guards it lacks against idle and oversized clients.

* **A request head must arrive in time.** uvicorn starts its keep-alive timer only after a
  first response, and stops it at a request's first byte: a socket that sends nothing, or a
  slowloris sending one header byte every few seconds, held a connection slot forever (256
  of them denied service to everyone). Here every connection must complete a request head
  within `HEADER_TIMEOUT_S` of opening, or of its previous response; otherwise it is closed.
* **The header limit holds for any read size.** h11 measures only an *incomplete* head
  against its limit, so a 20 KB head arriving in one read was accepted. Here the bytes of
  each head are counted as they arrive, and a head over the config's
  `h11_max_incomplete_event_size` (artjax.serve.MAX_HEADER_BYTES) is answered 431 and the
  connection closed.
"""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
_END = b"\r\n\r\n"


class GuardedH11Protocol(H11Protocol):
  def __init__(self, config, *args, **kwargs):
    super().__init__(config, *args, **kwargs)
    self.max_head = int(config.h11_max_incomplete_event_size or 16 * 1024)

  def connection_made(self, transport):
    super().connection_made(transport)
    self._head = b""
    self._head_timer = None
    self._arm_head_timer()

  def _arm_head_timer(self) -> None:
    if self._head_timer is not None:
      self._head_timer.cancel()
    self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)

  def _head_timeout(self) -> None:
    self._head_timer = None
    if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
      self.transport.close()          # no complete request head in time: idle or slowloris

  def connection_lost(self, exc):
    if self._head_timer is not None:
      self._head_timer.cancel()
      self._head_timer = None
    super().connection_lost(exc)

  def data_received(self, data: bytes) -> None:
    if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
      # the bytes of this head so far (bounded: only up to the limit and its terminator)
      self._head = (self._head + data)[:self.max_head + len(_END) + 1]
      end = self._head.find(_END)
      if (end if end >= 0 else len(self._head)) > self.max_head:
        self._refuse_head()
        return
      if end >= 0:
        self._head = b""
    super().data_received(data)

  def _refuse_head(self) -> None:
    body = b'{"error": "request headers larger than %d bytes"}' % self.max_head
    self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                         b"content-type: application/json\r\nconnection: close\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
    self.transport.close()

  def on_response_complete(self) -> None:
    super().on_response_complete()
    self._head = b""
    if not self.transport.is_closing():
      self._arm_head_timer()          # the next request's head is due in time too
