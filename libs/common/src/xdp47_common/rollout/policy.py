"""The effective gate policy of a rollout: its policy fields over scheduler defaults.

``EffectivePolicy`` is what the gates read. It is resolved once (a null policy field
takes the scheduler's ``XDP47_SCHED_*`` default) and, being a frozen pydantic model,
round-trips through the ``rollouts.effective_policy`` jsonb column unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field

from xdp47_common.rollout.analysis import AnalysisPolicy

__all__ = [
    "EffectivePolicy",
    "LateJoiners",
    "OnFailure",
    "PolicyDefaults",
    "PolicyOverrides",
    "default_policy",
]


class OnFailure(StrEnum):
    """What happens when a rollout ends ``failed``: nothing more (``stop``, the
    behaviour before the field existed and the default), or the scheduler starts
    a rollback of it by itself (``rollback``), once."""

    STOP = "stop"
    ROLLBACK = "rollback"


class LateJoiners(StrEnum):
    """What a device gets that starts matching a running rollout after the wave
    its rank falls in was written (claimed, relabelled, freed by another
    rollout): a target in the wave running now (``current_wave``), in the last
    wave (``last_wave``, the default: it is updated only once every earlier
    wave's gates passed, and the last wave's gate judges it), or nothing
    (``ignore``, what a rollout did before the setting existed)."""

    CURRENT_WAVE = "current_wave"
    LAST_WAVE = "last_wave"
    IGNORE = "ignore"


class PolicyOverrides(Protocol):
    """Anything shaped like ``models.PolicyFields``: None means "use the default"."""

    @property
    def require_ok(self) -> bool | None: ...
    @property
    def skip_offline(self) -> bool | None: ...
    @property
    def grace_seconds(self) -> int | None: ...
    @property
    def min_success_ratio(self) -> float | None: ...
    @property
    def max_failures_per_wave(self) -> int | None: ...
    @property
    def abort_on_zero_eligible(self) -> bool | None: ...
    @property
    def wave_deadline_seconds(self) -> int | None: ...
    @property
    def analysis(self) -> AnalysisPolicy | None: ...
    @property
    def on_failure(self) -> OnFailure | None: ...
    @property
    def max_device_retries(self) -> int | None: ...
    @property
    def retry_backoff_seconds(self) -> int | None: ...
    @property
    def retry_backoff_max_seconds(self) -> int | None: ...
    @property
    def approval_before_waves(self) -> Sequence[int] | None: ...
    @property
    def maintenance_windows(self) -> Sequence[str] | None: ...
    @property
    def late_joiners(self) -> LateJoiners | None: ...


class EffectivePolicy(BaseModel):
    """The complete, resolved gate settings a rollout runs under."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    require_ok: bool
    skip_offline: bool
    grace_seconds: Annotated[float, Field(ge=0)]
    min_success_ratio: Annotated[float, Field(ge=0, le=1)]
    max_failures_per_wave: Annotated[int, Field(ge=0)]
    abort_on_zero_eligible: bool
    wave_deadline_seconds: Annotated[float, Field(gt=0)]
    # A default, not a setting: policies kept before the field existed read as
    # ``stop``, what they did.
    on_failure: OnFailure = OnFailure.STOP
    # Per-device retries (``rollout.retries``). The defaults here are those of a
    # rollout whose policy was kept before the fields existed: no retries, as it
    # started; a new rollout always resolves them from the scheduler defaults.
    max_device_retries: Annotated[int, Field(ge=0, le=10)] = 0
    retry_backoff_seconds: Annotated[float, Field(ge=0)] = 30.0
    retry_backoff_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    # The waves (2 and up) that start only once approved; none by default, so a
    # policy kept before the field existed reads as "no approval".
    approval_before_waves: tuple[Annotated[int, Field(ge=2)], ...] = ()

    def needs_approval(self, wave: int) -> bool:
        """Whether ``wave`` starts only on an approve command."""
        return wave in self.approval_before_waves

    # No scheduler default: a rollout is analysed only when its policy says how.
    analysis: AnalysisPolicy | None = None
    # Weekly windows in each device's zone (``rollout.windows``); none: always.
    maintenance_windows: tuple[str, ...] = ()
    # A policy kept before the field existed reads as ``ignore``, what it did; a
    # new rollout resolves ``last_wave`` (``default_policy``).
    late_joiners: LateJoiners = LateJoiners.IGNORE

    @classmethod
    def resolve(
        cls,
        overrides: PolicyOverrides | Mapping[str, object] | None,
        defaults: EffectivePolicy,
    ) -> EffectivePolicy:
        """Return ``defaults`` with every non-null field of ``overrides`` applied.

        Args:
            overrides: A policy (``Policy``/``PolicyFields``), a mapping such as a
                database record of the policy columns (unknown keys are ignored),
                or None for no policy.
            defaults: The scheduler defaults, complete.

        Returns:
            The effective policy.

        Raises:
            pydantic.ValidationError: When an override is out of range.
        """
        if overrides is None:
            return defaults
        values = defaults.model_dump()
        for name in cls.model_fields:
            if isinstance(overrides, Mapping):
                value = overrides.get(name)
            else:
                value = getattr(overrides, name, None)
            if value is not None:
                values[name] = value
        return cls.model_validate(values)


class PolicyDefaults(Protocol):
    """The scheduler defaults as settings hold them (``XDP47_SCHED_*``)."""

    @property
    def sched_require_ok(self) -> bool: ...
    @property
    def sched_skip_offline(self) -> bool: ...
    @property
    def sched_grace(self) -> float: ...
    @property
    def sched_min_success_ratio(self) -> float: ...
    @property
    def sched_max_failures_per_wave(self) -> int: ...
    @property
    def sched_abort_on_zero_eligible(self) -> bool: ...
    @property
    def sched_wave_deadline(self) -> float: ...
    @property
    def sched_max_device_retries(self) -> int: ...
    @property
    def sched_retry_backoff(self) -> float: ...
    @property
    def sched_retry_backoff_max(self) -> float: ...


def default_policy(settings: PolicyDefaults) -> EffectivePolicy:
    """The scheduler defaults (``XDP47_SCHED_*``) as a complete policy."""
    return EffectivePolicy(
        require_ok=settings.sched_require_ok,
        skip_offline=settings.sched_skip_offline,
        grace_seconds=settings.sched_grace,
        min_success_ratio=settings.sched_min_success_ratio,
        max_failures_per_wave=settings.sched_max_failures_per_wave,
        abort_on_zero_eligible=settings.sched_abort_on_zero_eligible,
        wave_deadline_seconds=settings.sched_wave_deadline,
        max_device_retries=settings.sched_max_device_retries,
        retry_backoff_seconds=settings.sched_retry_backoff,
        retry_backoff_max_seconds=settings.sched_retry_backoff_max,
        late_joiners=LateJoiners.LAST_WAVE,
    )
