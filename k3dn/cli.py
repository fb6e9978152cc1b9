"""The ``k3dn`` console command; every Snakemake rule calls one of its subcommands.

Each area of the package contributes its subcommands through an ``add_commands(subparsers)`` function;
a subcommand's handler is stored as ``func`` and receives the parsed arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Top-level command -> the module that adds it. Only the module of the command being run is imported: a
#: workflow runs hundreds of short jobs, and most of them (tables, manifests, downloads) never need torch.
COMMANDS = {
    "synth": "k3dn.synth.commands",          # render synthetic DP sets, DDD-syn, RDPD
    "data": "k3dn.data.commands",            # download, manifest, check
    "train": "k3dn.train.commands",          # train any registered model
    "deblur": "k3dn.train.commands",         # one DP pair
    "predict": "k3dn.infer",                 # any registered model on a manifest
    "gather": "k3dn.infer",                  # per-image predictions into one folder
    "evaluate": "k3dn.evaluate",             # per-image metrics of a prediction folder
    "baselines": "baselines.commands",       # checkpoint registry, fetch, verify
    "report": "k3dn.report.commands",        # tables, figures, speed, timings
    "preflight": "k3dn.preflight",           # every input can be had, before any work
    "miniature": "k3dn.miniature.commands",  # stand-ins of the miniature run, its registries
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="k3dn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    modules = [COMMANDS[first]] if first in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in dict.fromkeys(modules):
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
