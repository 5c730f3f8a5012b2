"""The only modules that import asyncpg and aio-pika, and the bus adapters.

``amqp_bus.AmqpBus`` (RabbitMQ) and ``memory.InMemoryBus`` (one process) both
implement the port ``xdp47_common.bus.Bus``.
"""

__all__: list[str] = []
