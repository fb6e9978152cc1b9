"""The JSON specs that ``k3dn report`` subcommands take (``--spec``, ``--rows``), read and checked before any work.

A spec that is not JSON, lacks a key, or names a file that is not there is an :class:`~k3dn.errors.InputError`:
``k3dn`` prints one line naming the option or the key and what to do, and exits 1. Status 2 stays argparse's own
(an unknown or missing option); a value the command parses itself is an input, as ``k3dn train --set x`` is.

No imports beyond the standard library and ``k3dn.errors``: the table, report and figure modules all use these,
and building a table must not import matplotlib or torch.
"""

from __future__ import annotations

import json

from k3dn.errors import InputError

#: The figures ``k3dn report figure`` draws; the model figures run a trained K3DN (on ``--device``), the others
#: only plot files. Here, not in the plotting modules, so that the CLI and the workflow need no matplotlib.
MODEL_FIGURES = ("reblur", "psf_kernels", "disparity_clusters")
FIGURE_NAMES = ("ablations", "speed_accuracy", "qualitative", *MODEL_FIGURES, "dpd_disp")


def parse_spec(text: str, option: str = "--spec"):
    """``text`` as JSON; an :class:`InputError` naming ``option`` if it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"not valid JSON ({e}); write it with double quotes, the whole value quoted for the shell: "
            f"""{option} '{{"key": "value"}}'""",
            where=option,
        ) from None


def require_keys(spec, keys, where: str, hint: str = "") -> None:
    """``spec`` must be a JSON object holding every key in ``keys``; else an :class:`InputError` naming ``where``
    (the figure, table row or option the spec describes) and, where given, ``hint`` (where its format is shown)."""
    fix = f"; {hint}" if hint else ""
    if not isinstance(spec, dict):
        raise InputError(f"the spec must be a JSON object, got {type(spec).__name__}{fix}", where=where)
    missing = [k for k in keys if k not in spec]
    if missing:
        raise InputError(f"the spec lacks key(s) {missing}{fix}", where=where)


def require_list(spec, where: str, hint: str = "", empty_ok: bool = False) -> list:
    """``spec`` as a JSON list (non-empty unless ``empty_ok``) of entries each checked by the caller."""
    fix = f"; {hint}" if hint else ""
    if not isinstance(spec, list):
        raise InputError(f"must be a JSON list, got {type(spec).__name__}{fix}", where=where)
    if not spec and not empty_ok:
        raise InputError(f"is an empty list: nothing to do{fix}", where=where)
    return spec


def require_mapping(value, where: str, hint: str = "") -> dict:
    """``value`` (one key of a spec) as a JSON object such as ``{name: path}``; whether it may be empty is the
    caller's to say (with the message that says why)."""
    if not isinstance(value, dict):
        fix = f"; {hint}" if hint else ""
        raise InputError(f"must be a JSON object {{name: path}}, got {type(value).__name__}{fix}", where=where)
    return value


def int_key(spec: dict, key: str, default: int, where: str) -> int:
    """``spec[key]`` (or ``default``) as an int; an :class:`InputError` naming the key if it is not a number."""
    value = spec.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"must be an integer, got {value!r}", where=f"{where}: key {key!r}") from None
