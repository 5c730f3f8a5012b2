"""The only modules that import asyncpg and aio-pika."""

__all__: list[str] = []
