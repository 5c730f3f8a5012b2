"""``xdp47 completion bash|zsh|fish``: print the shell's completion script.

``xdp47 --install-completion`` and ``--show-completion`` (typer's) do the same
for the shell they detect; this command names the shell, for a shell started
elsewhere or a package's completion file. The script calls ``xdp47`` back with
``_XDP47_COMPLETE`` set, so it completes commands, options and choices of the
installed version.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from typer._completion_shared import get_completion_script

__all__ = ["COMPLETE_VAR", "Shell", "completion"]

COMPLETE_VAR = "_XDP47_COMPLETE"


class Shell(StrEnum):
    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


def completion(
    shell: Annotated[Shell, typer.Argument(help="The shell to complete in.")],
) -> None:
    """Print the completion script of a shell.

    bash: `eval "$(xdp47 completion bash)"` in ~/.bashrc; zsh: the same with
    zsh in ~/.zshrc (after compinit); fish: `xdp47 completion fish >
    ~/.config/fish/completions/xdp47.fish`.
    """
    # ``shell`` names the shell the script is written for; nothing is run
    # (bandit's B604 reads any ``shell=`` keyword as a subprocess flag).
    script = get_completion_script(  # nosec B604
        prog_name="xdp47", complete_var=COMPLETE_VAR, shell=shell.value
    )
    typer.echo(script)
