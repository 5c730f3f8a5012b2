"""The plan preview on a rollout's page, from the REST plan endpoint
(``GET /api/rollouts/{rollout_id}/plan``, returning ``RolloutPlan``).

The endpoint is found on the rollouts router by its path and called as a function
(the same code path as the API), with the arguments it names among
``rollout_id``, ``principal`` and ``services``; its other parameters keep their
defaults. While the endpoint does not exist the page says the preview is
unavailable instead of failing.
"""

from __future__ import annotations

import inspect
from typing import Any
from uuid import UUID

from fastapi.routing import APIRoute

from xdp47_api.routes import rollouts as rollout_routes
from xdp47_api.state import Services
from xdp47_api.ui.pages._common import call_api
from xdp47_api.ui.session import UiSession
from xdp47_common.models import RolloutPlan

__all__ = ["PLAN_PATH", "load_plan"]

PLAN_PATH = "/api/rollouts/{rollout_id}/plan"


def _endpoint() -> Any | None:
    for route in rollout_routes.router.routes:
        if (
            isinstance(route, APIRoute)
            and route.path == PLAN_PATH
            and "GET" in (route.methods or ())
        ):
            return route.endpoint
    return None


async def load_plan(
    services: Services, session: UiSession, rollout_id: UUID
) -> RolloutPlan | None:
    """The rollout's plan, or None while the API has no plan endpoint."""
    endpoint = _endpoint()
    if endpoint is None:
        return None
    given = {"rollout_id": rollout_id, "principal": session.principal}
    given["services"] = services
    kwargs: dict[str, Any] = {}
    for name, param in inspect.signature(endpoint).parameters.items():
        if name in given:
            kwargs[name] = given[name]
        elif param.default is inspect.Parameter.empty:
            return None  # a shape this page does not know how to call
        else:
            default = param.default
            # FastAPI's Query(...)/Depends(...) markers are not values.
            kwargs[name] = getattr(default, "default", default)
    result = await call_api(endpoint(**kwargs))
    return RolloutPlan.model_validate(result, from_attributes=True)
