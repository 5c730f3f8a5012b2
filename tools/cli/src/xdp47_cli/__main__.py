"""``python -m xdp47_cli`` runs the CLI, as the ``xdp47`` script does."""

from xdp47_cli.main import app

app(prog_name="xdp47")
