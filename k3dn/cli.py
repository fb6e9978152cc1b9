"""The ``k3dn`` console command; every Snakemake rule calls one of its subcommands.

Each area of the package contributes its subcommands through an ``add_commands(subparsers)`` function;
a subcommand's handler is stored as ``func`` and receives the parsed arguments.

Errors. A failure the user can act on (:class:`k3dn.errors.UserError`, or a class listed in :data:`EXPECTED`)
prints one line on stderr, ``error: <file or key>: <what is wrong and what to do>``, and nothing else there.
Exit status:

* 2: the command line itself is wrong (argparse's usage errors);
* 1: any other expected failure: an input, weights, a config file, a download;
* 3: a file only a person can download (``ManualDownloadRequired``, as ``k3dn data download`` documents).

Anything else is a bug and keeps its traceback. ``--debug`` shows the traceback of expected failures too;
``--verbose`` adds the whole message where the line is a summary (every tensor of a checkpoint mismatch).
Files are written to ``<name>.tmp`` and renamed, and inputs are checked before outputs are made, so a failed
command leaves no half-written file.

Logging. Modules log through ``logging.getLogger(__name__)``; :func:`main` shows the ``k3dn`` and
``baselines`` loggers on stderr as ``<level>: <message>``, at INFO by default, DEBUG with ``--verbose``,
warnings only with ``--quiet``. Command output (tables, paths) stays on stdout. The three options go before the
subcommand (``k3dn --debug deblur ...``) or after it, where that subcommand has no option of the same name
(``k3dn data list -v`` and ``k3dn evaluate --quiet`` keep their own meaning).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys

from k3dn.errors import UserError, describe

#: Top-level command -> the module that adds it. Only the module of the command being run is imported: a
#: workflow runs hundreds of short jobs, and most of them (tables, manifests, downloads) never need torch.
COMMANDS = {
    "synth": "k3dn.synth.commands",  # render synthetic DP sets, DDD-syn, RDPD
    "data": "k3dn.data.commands",  # download, manifest, check
    "train": "k3dn.train.commands",  # train any registered model
    "deblur": "k3dn.train.commands",  # one DP pair
    "predict": "k3dn.infer",  # any registered model on a manifest
    "gather": "k3dn.infer",  # per-image predictions into one folder
    "evaluate": "k3dn.evaluate",  # per-image metrics of a prediction folder
    "import-predictions": "k3dn.external",  # result images made elsewhere, checked for `evaluate`
    "baselines": "baselines.commands",  # checkpoint catalogue, fetch, verify
    "report": "k3dn.report.commands",  # tables, figures, speed, timings
    "compare": "k3dn.report.compare",  # two methods paired image by image: interval, win rate, scatter
    "preflight": "k3dn.preflight",  # every input can be had, before any work
    "miniature": "k3dn.miniature.commands",  # stand-ins of the miniature run, its registries
}


#: Expected failures whose classes do not derive from UserError, as (module, class): looked up only in modules
#: already imported (an exception cannot come from a module that was never imported, and the light commands
#: must not import torch to name a class).
EXPECTED = (
    ("k3dn.registry", "UnknownModelError"),
    ("k3dn.workflow", "WorkflowConfigError"),
    ("k3dn.data.catalog", "CatalogError"),
    ("k3dn.data.manifest", "ManifestError"),
    ("k3dn.data.layouts", "LayoutError"),
    ("k3dn.data.datasets", "DatasetError"),
    ("k3dn.data.archives", "ArchiveError"),
    ("k3dn.data.probe", "ProbeError"),
    ("k3dn.evaluate", "EvaluationError"),
    ("k3dn.train.loop", "TrainingError"),
    ("k3dn.train.loop", "NonFiniteLoss"),
    ("k3dn.lpips", "LPIPSWeightsError"),
    ("builtins", "FileNotFoundError"),  # a path given on the command line or in a config
    ("builtins", "PermissionError"),
)

#: (option strings, dest, help) of the options every (sub)command takes.
_GLOBAL = (
    (("--debug",), "debug", "show the traceback of an error"),
    (("-v", "--verbose"), "verbose", "log at DEBUG level; show an error's whole message"),
    (("-q", "--quiet"), "quiet", "log warnings and errors only"),
)


def expected_types() -> tuple[type, ...]:
    found = (getattr(sys.modules.get(m), n, None) for m, n in EXPECTED)
    return (UserError, *(t for t in found if isinstance(t, type)))


def _add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    for flags, dest, help in _GLOBAL:
        if not any(f in parser._option_string_actions for f in flags):
            # below the top level the default is SUPPRESS: a subparser's default would overwrite the top-level value
            parser.add_argument(
                *flags,
                dest=f"log_{dest}" if dest != "debug" else dest,
                action="store_true",
                default=False if top else argparse.SUPPRESS,
                help=help,
            )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in dict.fromkeys(action.choices.values()):
                _add_global_options(p, top=False)


def global_flags(args) -> list[str]:
    """The global options of ``args`` as command-line words (to pass on to a relaunched ``k3dn``)."""
    return [
        f for f, on in (("--debug", args.debug), ("--verbose", args.log_verbose), ("--quiet", args.log_quiet)) if on
    ]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="k3dn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    modules = [COMMANDS[first]] if first in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in dict.fromkeys(modules):
        importlib.import_module(name).add_commands(sub)
    _add_global_options(parser, top=True)
    return parser


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture replaces it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage()}"
        return text + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


@contextlib.contextmanager
def _logging(level: int):
    """The k3dn and baselines loggers at ``level`` on stderr for one command; other libraries stay at WARNING.
    Restored afterwards, so in-process calls (tests) leave no handler behind."""
    handler = _Stderr()
    handler.setFormatter(_Format())
    root = logging.getLogger()
    ours = [logging.getLogger(n) for n in ("k3dn", "baselines")]
    before = [lg.level for lg in ours]
    root.addHandler(handler)
    for lg in ours:
        lg.setLevel(level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for lg, lv in zip(ours, before):
            lg.setLevel(lv)


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    level = logging.DEBUG if args.log_verbose else logging.WARNING if args.log_quiet else logging.INFO
    with _logging(level):
        try:
            return int(args.func(args) or 0)
        except expected_types() as e:
            if args.debug:
                raise
            whole = str(e).strip()
            if args.log_verbose and whole != describe(e):
                print(whole, file=sys.stderr)
            print(f"error: {describe(e)}", file=sys.stderr)
            return int(getattr(e, "exit_code", 1))


if __name__ == "__main__":
    sys.exit(main())
