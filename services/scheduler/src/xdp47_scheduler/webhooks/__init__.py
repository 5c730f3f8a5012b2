"""``xdp47-webhooks``: deliver rollout events to the tenants' webhook subscriptions.

A process of its own (scale it apart from the scheduler): ``fanout`` turns each
rollout event into one delivery per matching subscription, ``attempts`` sends a
delivery, signed, and schedules its retry through a RabbitMQ delay queue, and the
sweep of ``service`` gives a job again to a delivery whose job was lost.
"""
