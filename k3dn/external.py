"""``k3dn import-predictions``: result images made outside the suite, checked and scored under its protocol.

Several dual-pixel papers released their result images. Scoring those files with the suite's metrics puts them
under one protocol beside every method the suite runs, without a port of the method: the row is the authors'
output, whatever code, weights and settings made it. So the imported folder says so: its ``predictions.json`` has
``"provenance": "external"``, the method name and the user's statement of how the images were made, the sha256
and bit depth of every file and the sha256 of the manifest they were checked against; ``k3dn evaluate`` carries
``external`` and the statement into the metrics file and ``k3dn report table`` shows the row as external.

Checks, all made before anything is written (every problem is reported, one line each, naming the file):
every manifest id has ``<id>.png`` in the folder; nothing else is in the folder (a stray file is a sign of the
wrong folder or wrong ids); each file is a readable PNG of the claimed bit depth, of its target's size, with the
manifest's channel count (``channels``: what ``k3dn evaluate`` compares).

The files are copied byte for byte, never re-encoded, into a staging folder beside ``--out`` that is renamed into
place when complete: an interrupted or refused import leaves no ``--out`` (or the previous import there intact).

8-bit files: a 16-bit target can tell apart 257 levels between two 8-bit values, so an 8-bit prediction's PSNR
is capped however good the method; ``results/tables/protocol_sensitivity.csv`` measures that cap on every
method's predictions (protocol ``8bit-pred``, :mod:`k3dn.report.sensitivity`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from k3dn.errors import InputError

log = logging.getLogger(__name__)

BIT_DEPTHS = (8, 16)
#: ``predictions.json`` ``provenance`` of an imported folder (``k3dn predict`` writes no such key: made by the suite)
EXTERNAL = "external"
_PNG_SIG = b"\x89PNG\r\n\x1a\n"


class ImportRefused(InputError):
    """The folder cannot be imported; ``problems`` holds one line per problem, each naming its file."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _check_file(path: Path, row, bit_depth: int) -> tuple[list[str], dict]:
    """Problems of one candidate file against its manifest row, and its facts when it has none."""
    from k3dn.data.probe import ProbeError, probe_image
    from k3dn.io import ImageError, read_raw

    with open(path, "rb") as f:
        if f.read(len(_PNG_SIG)) != _PNG_SIG:
            return [f"{path}: not a PNG file"], {}
    try:
        raw = read_raw(path)  # decodes the whole file: a corrupt one is named here, not at scoring time
    except ImageError as e:
        return [str(e)], {}
    problems = []
    png_depth = depth = 16 if raw.dtype.itemsize == 2 else 8
    if png_depth == 16 and not (raw % 257).any():
        # v * 257: 8-bit values widened exactly (read as v / 255), whose cap the row must show; an image of two
        # levels at most (all black, black and white) is as exact in 16 bits as in 8, so it is what was claimed
        depth = bit_depth if len(np.unique(raw)) <= 2 else 8
    elif png_depth == 16 and not (raw & 0xFF).any():
        problems.append(
            f"{path}: 16-bit PNG holding 8-bit values shifted left by 8 bits (v * 256: every low byte 0), read "
            "as v * 256 / 65535, not v / 255; write them as 8-bit PNGs"
        )
    if depth != bit_depth:
        held = " holding 8-bit values (every sample a multiple of 257)" if depth != png_depth else ""
        problems.append(f"{path}: {png_depth}-bit PNG{held}, but --bit-depth {bit_depth} was claimed")
    h, w, c = raw.shape
    want_c = int(row.channels)
    if c != want_c:
        problems.append(f"{path}: {c} channel(s), but the manifest scores id {row.id!r} with {want_c}")
    try:
        target = probe_image(row.target)
    except ProbeError as e:
        return problems + [f"{e} (the target of id {row.id!r})"], {}
    if (w, h) != target.size:
        problems.append(
            f"{path}: {w}x{h} (WxH), but its target {row.target} is {target.width}x{target.height}; "
            "predictions are scored at the target's size"
        )
    return problems, {"bit_depth": depth, "png_bit_depth": png_depth, "channels": c, "size": [w, h]}


def check_folder(folder, manifest, bit_depth: int) -> tuple[list[str], dict]:
    """``(problems, files)``: every problem of ``folder`` against ``manifest`` (one line each, naming the file),
    and ``{id: facts}`` of the files without one."""
    from k3dn.data.manifest import read_manifest

    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"bit depth must be one of {BIT_DEPTHS}, not {bit_depth!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("prediction folder not found", where=folder)
    df = read_manifest(manifest)
    wanted = {f"{i}.png": r for i, r in zip(df["id"], df.itertuples(index=False))}
    problems, files = [], {}
    for name, row in wanted.items():
        path = folder / name
        if not row.target:
            problems.append(f"{manifest}: id {row.id!r} has no target; its predictions cannot be scored")
        elif path.is_symlink():  # the file imported must be the one in the folder, not wherever a link points
            problems.append(f"{path}: a symbolic link; copy the image itself into {folder}")
        elif not path.is_file():
            problems.append(f"{path}: missing (manifest {manifest} has id {row.id!r})")
        else:
            found, facts = _check_file(path, row, bit_depth)
            problems += found
            if not found:
                files[row.id] = facts
    for p in sorted(folder.iterdir()):
        if p.name not in wanted:
            kind = "file" if p.is_file() else "entry"
            problems.append(f"{p}: stray {kind}: not <id>.png of an id in {manifest}")
    return problems, files


def _what_is_at(out: Path, ids) -> str:
    """``absent``, ``empty``, ``import`` (an earlier one), ``images`` (nothing but ``<id>.png`` files of
    ``ids``: an earlier import whose ``predictions.json`` the workflow deleted), ``predict`` (a folder ``k3dn
    predict`` finished, or a ``predictions.json`` not known to be an import) or ``other``."""
    if not out.exists():
        return "absent"
    if not out.is_dir() or out.is_symlink():
        return "other"
    try:
        record = json.loads((out / "predictions.json").read_text())
    except FileNotFoundError:
        names = {f"{i}.png" for i in ids}
        entries = list(out.iterdir())
        if not entries:
            return "empty"
        only_images = all(p.name in names and p.is_file() and not p.is_symlink() for p in entries)
        return "images" if only_images else "other"
    except (OSError, ValueError):
        return "predict"
    return "import" if isinstance(record, dict) and record.get("provenance") == EXTERNAL else "predict"


def import_predictions(
    folder, manifest, out, method: str, bit_depth: int, statement: str, replace: bool = False
) -> Path:
    """Check ``folder`` against ``manifest`` (:func:`check_folder`; :class:`ImportRefused` with every problem),
    then write ``out/<id>.png`` (copies) and ``out/predictions.json``, all at once. ``out`` may be absent, empty
    or a previous import, which is replaced; with ``replace`` (the workflow, which deletes a job's
    ``predictions.json`` before running it), a folder of nothing but the manifest's ``<id>.png`` files is
    replaced too, whoever wrote them. Anything else is refused: a folder with a ``predictions.json`` that
    ``k3dn predict`` wrote, or with its resume key (an unfinished run), or with other files or folders."""
    from k3dn.data.manifest import read_manifest
    from k3dn.provenance import config_hash, git_commit, sha256_file

    folder, out = Path(folder), Path(out)
    if not method.strip():
        raise InputError("--method: a name is needed for the imported method")
    if not statement.strip():
        raise InputError("--note: say how the images were made (code, weights, settings, where they come from)")
    src, dst = folder.resolve(), out.resolve()
    if dst == src or src in dst.parents or dst in src.parents:  # the replaced folder would take the source with it
        raise InputError(f"the output folder and the source folder {folder} are one inside the other", where=out)
    there = _what_is_at(out, read_manifest(manifest)["id"] if out.is_dir() else ())
    if there in ("predict", "other") or there == "images" and not replace:
        raise InputError(
            "exists and is not an earlier import; remove it or choose another --out (a folder with predictions "
            "`k3dn predict` recorded, or with anything but the test set's <id>.png files, is never overwritten)",
            where=out,
        )
    problems, facts = check_folder(folder, manifest, bit_depth)
    if problems:
        raise ImportRefused(problems)

    stage = out.parent / f".{out.name}.import.tmp"
    old = out.parent / f".{out.name}.import.old"
    out.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (stage, old):  # of an import killed outright (an interrupt cleans up after itself)
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        stage.mkdir()
        files = {}
        for i, f in facts.items():
            src, dst = folder / f"{i}.png", stage / f"{i}.png"
            want = sha256_file(src)
            shutil.copyfile(src, dst)
            if sha256_file(dst) != want:
                raise InputError("changed while it was being imported; import again", where=src)
            files[i] = {"sha256": want, **f}
        key = {
            "provenance": EXTERNAL,
            "method": method,
            "statement": statement,
            "bit_depth": bit_depth,
            "files": files,
            "manifest_sha256": sha256_file(manifest),
        }
        record = {
            **key,
            "config_hash": config_hash(key),
            "source_folder": str(folder.resolve()),
            "manifest": str(Path(manifest).resolve()),
            "images": len(files),
            "import_commit": git_commit(),
            # what `k3dn evaluate` copies into the metrics file: the suite knows neither for outside images
            "device": EXTERNAL,
            "dtype": EXTERNAL,
        }
        tmp = stage / "predictions.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, stage / "predictions.json")
        if out.exists():
            os.replace(out, old)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)  # the previous import stays
        raise
    shutil.rmtree(old, ignore_errors=True)
    if bit_depth == 8:
        log.info("8-bit predictions: a 16-bit target caps their PSNR (see protocol 8bit-pred in protocol_sensitivity)")
    return out


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------


def _cmd_import(args) -> int:
    import sys

    try:
        out = import_predictions(
            args.source, args.manifest, args.out, args.method, args.bit_depth, args.note, replace=args.replace
        )
    except ImportRefused as e:
        if args.debug:
            raise
        for p in e.problems:  # one line each, so every problem is named at once
            print(f"error: {p}", file=sys.stderr)
        return e.exit_code
    print(f"imported {len(list(out.glob('*.png')))} external predictions of {args.method} into {out}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "import-predictions",
        help="check result images made elsewhere against a manifest and import them for `k3dn evaluate`",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--from", dest="source", required=True, metavar="FOLDER", help="folder with <id>.png files")
    p.add_argument(
        "--manifest", required=True, help="manifest CSV (`k3dn data manifest`) the ids and targets come from"
    )
    p.add_argument("--out", required=True, help="folder to write (absent, empty or an earlier import)")
    p.add_argument("--method", required=True, help="name of the method that made the images")
    p.add_argument("--bit-depth", type=int, choices=BIT_DEPTHS, required=True, help="bit depth of every file")
    p.add_argument(
        "--note",
        required=True,
        help="how the images were made: code, weights, settings, where they were downloaded (shown in the tables)",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="also replace an --out holding nothing but the test set's <id>.png files (an earlier import whose "
        "predictions.json the workflow deleted); never one with a predictions.json of `k3dn predict`",
    )
    p.set_defaults(func=_cmd_import)
