"""The command groups of the CLI, one module per API area."""
