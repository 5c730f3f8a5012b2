"""The webhook delivery job: which delivery to attempt, and which attempt.

Published by the webhook worker to ``xdp47.webhooks`` (key ``delivery``, or
``retry.<ms>`` into a delay queue that dead-letters it back when its TTL ends).
``attempt`` is how many attempts the delivery had when the job was made: of
several jobs for one attempt (a sweep's after a lost one), one wins.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from xdp47_common.messages.envelope import Envelope

__all__ = ["WebhookJob"]


class WebhookJob(Envelope):
    type: Literal["webhook.delivery"] = "webhook.delivery"
    version: Literal[1] = 1
    delivery_id: UUID
    attempt: int = Field(ge=0)
