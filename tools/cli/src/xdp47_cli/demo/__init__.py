"""``xdp47 demo``: the whole system on one machine, in one command.

``command.demo`` is the typer command (registered in ``xdp47_cli.main``);
``runner`` wires ``control`` (external processes or the embedded, in-process
mode), ``fleet`` (agents with demo apps) and ``scenario`` (the scripted
rollouts). See docs/cli.md, section "demo".
"""

from xdp47_cli.demo.command import demo

__all__ = ["demo"]
