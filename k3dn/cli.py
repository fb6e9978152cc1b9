"""The ``k3dn`` console command; every Snakemake rule calls one of its subcommands.

Each area of the package contributes its subcommands through an ``add_commands(subparsers)`` function;
a subcommand's handler is stored as ``func`` and receives the parsed arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys

_COMMAND_MODULES = (
    "k3dn.synth.commands",     # k3dn synth ...            render synthetic DP sets, DDD-syn, RDPD
    "k3dn.data.commands",      # k3dn data ...             download, manifest, check
    "k3dn.train.commands",     # k3dn train / deblur
    "k3dn.infer",              # k3dn predict              any registered model on a manifest
    "k3dn.evaluate",           # k3dn evaluate             per-image metrics of a prediction folder
    "baselines.commands",      # k3dn baselines ...        checkpoint registry, fetch, verify
    "k3dn.report.commands",    # k3dn report ...           tables, figures, speed
    "k3dn.preflight",          # k3dn preflight            every input can be had, before any work
    "k3dn.miniature.commands", # k3dn miniature ...        stand-ins of the miniature run, its registries
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="k3dn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
