"""uvicorn's httptools protocol with a keep-alive timer armed once per idle period.

uvicorn arms a timer when it completes an answer (``call_later``) and cancels it
when the next request's first bytes arrive: a timer made and cancelled per
request, 1.4 µs of a device request's CPU here (uvloop; docs/performance.md),
for a timer that almost never fires, devices sending again well within
``timeout_keep_alive``. ``KeepAliveProtocol`` keeps the rule and arms less: an
answer completed records when the connection went idle and arms the timer only
if none is armed; a request's first bytes mark the connection busy. When the
timer fires it closes the connection if it has been idle for
``timeout_keep_alive`` since its last answer, arms itself for the rest of that
time if it is idle for less, and does nothing while a request is read or
answered (its answer arms it again). So a connection is closed after the same
idle time as uvicorn closes it, a request in progress is never cut, and a
connection that keeps sending arms one timer per ``timeout_keep_alive`` instead
of one per request.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["KeepAliveProtocol"]

# The event loop's timers have millisecond resolution: one that fires this close
# to the idle limit counts as at it, instead of arming once more for the rest.
_RESOLUTION = 0.002


class KeepAliveProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the lazy keep-alive timer (see module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # When the connection's last answer completed; None while a request is
        # read or answered (and before the first one).
        self._idle_since: float | None = None

    def _unset_keepalive_if_required(self) -> None:
        """uvicorn calls it when a request's bytes arrive, before an answer
        completes and when the connection is lost: the connection is busy (an
        armed timer finds it so), not a timer to cancel."""
        self._idle_since = None

    def on_response_complete(self) -> None:
        """uvicorn's: count the request, resume reading, start a pipelined
        request or, when none waits, let the connection go idle."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        now = self.loop.time()
        self._idle_since = now
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_at(
                now + self.timeout_keep_alive, self._keep_alive_due
            )

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        idle_since = self._idle_since
        if idle_since is None:
            return  # busy: the answer arms the timer again
        due = idle_since + self.timeout_keep_alive
        if self.loop.time() + _RESOLUTION >= due:
            self.timeout_keep_alive_handler()
        else:
            self.timeout_keep_alive_task = self.loop.call_at(due, self._keep_alive_due)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        task = self.timeout_keep_alive_task
        if task is not None:
            task.cancel()
            self.timeout_keep_alive_task = None
