"""The API's application layer: one module of use cases per area.

The REST routes (``xdp47_api.routes``) and the web UI's pages
(``xdp47_api.ui.pages``) both call these functions, so a rule (a tenant check, a
404, which statuses a command accepts) is written once and both surfaces answer
alike. A use case takes the ``Services`` of the app (settings, bus, blob store and
``services.repos``) and the caller's ``Principal`` or tenant; it never builds a
repository or touches the pool.

Failures are raised as ``HTTPException`` with the status and message the API
answers (``errors``): both callers answer over HTTP, the UI maps the same
exceptions to its pages, and one exception type keeps every status and message
identical on both surfaces.
"""

__all__ = [
    "artifact_uploads",
    "artifacts",
    "audit",
    "devices",
    "errors",
    "policies",
    "progress",
    "rollout_commands",
    "rollouts",
    "tenants",
    "tokens",
]
