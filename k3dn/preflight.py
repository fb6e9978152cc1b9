"""``k3dn preflight``: before any work, make sure every input can be had.

A data set or checkpoint that is already in place, or that a program can fetch (HTTP, Google Drive), passes.
One that only a person can fetch (sync.com share links, web forms) and is not in place stops the workflow
here, with one message listing every such file: where to download it and exactly where to put it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from k3dn.data.downloads import ManualItem
from k3dn.data.registry import Dataset


def _blockers(ds: Dataset, dest: Path) -> list[ManualItem]:
    main = [s for s in ds.sources if not s.optional]
    if any(all((dest / f.path).is_file() for f in s.files) for s in main):
        return []
    if (dest / ".ready").is_file() or any(s.method != "manual" for s in main):
        return []
    return [ManualItem(dest / f.path, f.url, f.sha256, s.notes) for s in main for f in s.files]


def preflight(datasets, checkpoints, raw_root="resources/raw", ckpt_root="resources/checkpoints") -> list[str]:
    from baselines.registry import get_checkpoint
    from k3dn.data.registry import get_dataset

    problems = []
    items = [(get_dataset(d), Path(raw_root) / d) for d in datasets]
    items += [(get_checkpoint(c).as_dataset(), Path(ckpt_root) / c) for c in checkpoints]
    for ds, dest in items:
        for it in _blockers(ds, dest):
            problems.append(f"{ds.name}: download {it.url or '(see notes)'}\n    and save it as {it.path}"
                            + (f"\n    sha256 {it.sha256}" if it.sha256 else "")
                            + (f"\n    note: {it.note}" if it.note else ""))
    return problems


def _run(args) -> int:
    problems = preflight(args.datasets, args.checkpoints, args.raw_root, args.ckpt_root)
    if problems:
        print("These inputs can only be fetched by hand; put them in place and run again:", file=sys.stderr)
        for p in problems:
            print("  - " + p, file=sys.stderr)
        return 1
    print(f"preflight: {len(args.datasets)} data set(s) and {len(args.checkpoints)} checkpoint(s) can be had")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("preflight", help="check that every input can be fetched before any work")
    p.add_argument("--datasets", nargs="*", default=[])
    p.add_argument("--checkpoints", nargs="*", default=[])
    p.add_argument("--raw-root", default="resources/raw")
    p.add_argument("--ckpt-root", default="resources/checkpoints")
    p.set_defaults(func=_run)
