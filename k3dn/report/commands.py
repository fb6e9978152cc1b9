"""(being written) Subcommands of this area; see docs/DEVELOPING.md."""


def add_commands(subparsers) -> None:
    pass
