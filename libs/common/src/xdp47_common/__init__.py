"""XDP47 shared library.

Holds what every XDP47 service agrees on: the pydantic aggregates (``models``), the
versioned wire contracts (``messages``), the pure rollout logic (``rollout``), the
settings read from ``XDP47_*`` environment variables (``settings``), and the only
modules that talk to PostgreSQL and RabbitMQ (``adapters``).

The base install needs pydantic alone; extras add the server-side adapters.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
