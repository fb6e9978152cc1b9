"""Inputs only a person can fetch (sync.com share links, web forms): which of their files are not in place.

Both the workflow's plan (``k3dn.workflow``: what to leave out of a partial run) and ``k3dn preflight`` (what to
tell the user to download) ask this, so it lives below both. Like the plan, it must not import torch.
"""

from __future__ import annotations

from pathlib import Path

from k3dn.data.catalog import Dataset
from k3dn.data.downloads import ManualItem


def _blockers(ds: Dataset, dest: Path) -> list[ManualItem]:
    main = [s for s in ds.sources if not s.optional]
    if any(all((dest / f.path).is_file() for f in s.files) for s in main):
        return []
    if (dest / ".ready").is_file() or any(s.method != "manual" for s in main):
        return []
    return [ManualItem(dest / f.path, f.url, f.sha256, s.notes) for s in main for f in s.files]


def manual_blockers(kind: str, name: str, dest, registry=None) -> list[ManualItem]:
    """The manual-only files of data set or checkpoint ``name`` that are not in place under ``dest``."""
    if kind == "dataset":
        from k3dn.data.catalog import get_dataset

        return _blockers(get_dataset(name, registry), Path(dest))
    from baselines.published import get_checkpoint

    return _blockers(get_checkpoint(name, registry).as_dataset(), Path(dest))
