"""The ``k3dn`` command: every area's subcommands are listed, and a job imports only its own area."""

import subprocess
import sys

from k3dn.cli import COMMANDS, build_parser


def test_help_lists_every_command():
    choices = build_parser([]).__dict__["_subparsers"]._group_actions[0].choices
    assert set(choices) == set(COMMANDS)


def test_light_commands_do_not_import_torch():
    """Tables, manifests, downloads and preflight's config part are short workflow jobs: torch's import would be
    most of their time."""
    code = (
        "import sys; from k3dn.cli import build_parser\n"
        "for c in ('report', 'data', 'preflight', 'miniature', 'baselines', 'evaluate'):\n"
        "    build_parser([c, '--help'])\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
