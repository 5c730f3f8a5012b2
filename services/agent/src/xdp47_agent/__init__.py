"""XDP47 device agent: claim, heartbeat, verified download, atomic apply."""

from xdp47_agent.agent import Agent
from xdp47_agent.config import AgentConfig, load_config
from xdp47_agent.metrics import HttpMetrics, MetricsSource, Sample
from xdp47_agent.state import StateDir
from xdp47_agent.verify import ApplyRefused, Reason

__all__ = [
    "Agent",
    "AgentConfig",
    "ApplyRefused",
    "HttpMetrics",
    "MetricsSource",
    "Reason",
    "Sample",
    "StateDir",
    "load_config",
]
