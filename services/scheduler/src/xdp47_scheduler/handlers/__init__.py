"""The command handlers, one module per command, and the table that routes to them.

A new command (pause, approve, ...) is a message type in ``xdp47_common.messages``,
its decision in the pure core, a module here with its handler, and one line in
``HANDLERS``.
"""

from __future__ import annotations

from xdp47_scheduler.handlers.abort import handle_abort
from xdp47_scheduler.handlers.approve import handle_approve
from xdp47_scheduler.handlers.base import Handler, Step
from xdp47_scheduler.handlers.pause import handle_pause, handle_resume
from xdp47_scheduler.handlers.promote import handle_promote
from xdp47_scheduler.handlers.retry import handle_retry
from xdp47_scheduler.handlers.rollback import handle_rollback
from xdp47_scheduler.handlers.start import handle_start

__all__ = ["HANDLERS", "Handler", "Step"]

# By message type (``RolloutCommand.type``).
HANDLERS: dict[str, Handler] = {
    "rollout.start": handle_start,
    "rollout.retry": handle_retry,
    "rollout.abort": handle_abort,
    "rollout.rollback": handle_rollback,
    "rollout.pause": handle_pause,
    "rollout.resume": handle_resume,
    "rollout.approve": handle_approve,
    "rollout.promote": handle_promote,
}
