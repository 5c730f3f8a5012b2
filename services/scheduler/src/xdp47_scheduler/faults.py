"""Crash points for the fault suite: off unless their environment variable is set.

``XDP47_FAULT_CRASH_AFTER_COMMIT=<p>`` (0 < p <= 1): after a transaction that
wrote rollout events to the outbox commits, the process exits at once with
probability ``p`` (exit code 70), before the relay could publish them. It proves
that a crash between commit and publish loses no event (``tests/faults``). Never
set it in production.
"""

from __future__ import annotations

import logging
import os
import random

__all__ = ["CRASH_AFTER_COMMIT", "FAULT_EXIT", "crash_after_commit"]

log = logging.getLogger(__name__)

CRASH_AFTER_COMMIT = "XDP47_FAULT_CRASH_AFTER_COMMIT"
FAULT_EXIT = 70


def _chance(name: str) -> float:
    raw = os.environ.get(name)
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        return 0.0


def crash_after_commit() -> None:
    """The crash point between an outbox commit and its publish."""
    chance = _chance(CRASH_AFTER_COMMIT)
    if chance > 0 and random.random() < chance:
        log.error("fault hook %s: exiting after commit", CRASH_AFTER_COMMIT)
        logging.shutdown()
        os._exit(FAULT_EXIT)
