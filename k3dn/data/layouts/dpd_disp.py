"""DPD-disp (Punnappurath et al., ICCP 2020): dual-pixel views with (inverse-)depth ground truth and no
all-in-focus target, so it is predicted for the figures and never scored."""

from __future__ import annotations

import re
from pathlib import Path

from k3dn.data.adapters import ADAPTERS
from k3dn.data.layouts.common import (
    LayoutError,
    Scan,
    find_dirs,
    is_image,
    natural_key,
    probe,
    same_size,
)

_PROTOCOL = ADAPTERS["dpd_disp"].protocol


def scan_dpd_disp(root) -> Scan:
    """DPD-disp (ICCP 2020), either published layout:

    * the git repository's ``Qualitative/`` and ``Quantitative/`` folders of ``<id>_B.png`` (combined),
      ``<id>_L.png``, ``<id>_R.png``, without depth ground truth;
    * the Drive archive's flat folder of ``<id>_B.jpg``, ``<id>_L.jpg``, ``<id>_R.jpg`` and ``<id>_D.TIF``
      ((inverse-)depth GT, affine-ambiguous).

    Every folder below ``root`` holding ``*_B.*`` files is read; ids must be unique across them. No all-in-focus
    target: ``target`` is empty, GT (where present) goes to the ``depth`` column. Qualitative and disparity
    figures only."""
    root = Path(root)
    pat = re.compile(r"(.+)_([BLRD])$", re.IGNORECASE)
    hits = find_dirs(root, lambda d: any(pat.match(p.stem) and is_image(p) for p in d.glob("*_[Bb].*")), max_depth=3)
    if not hits:
        raise LayoutError(
            f"{root}: no DPD-disp layout found (expected <id>_B/_L/_R images: the repository's "
            "Qualitative/ and Quantitative/ folders, or the archive's flat folder with <id>_D.TIF)"
        )
    scan = Scan("dpd_disp", root)
    groups: dict[str, dict[str, Path]] = {}
    for base in hits:
        for p in sorted(base.iterdir()):
            m = pat.match(p.stem)
            if p.is_file() and m and is_image(p):
                kind = m.group(2).upper()
                if kind in groups.setdefault(m.group(1), {}):
                    raise LayoutError(f"{p}: second {kind} file for id {m.group(1)} ({groups[m.group(1)][kind]})")
                groups[m.group(1)][kind] = p
            elif p.is_file():
                scan.warn(f"{p}: not part of the DPD-disp layout, ignored")
    rows = []
    for i in sorted(groups, key=natural_key):
        g = groups[i]
        for k, what in (("B", "combined image"), ("L", "left view"), ("R", "right view")):
            if k not in g:
                raise LayoutError(f"{next(iter(g.values())).parent / (i + '_' + k)}.*: {what} of {i} missing")
        views = {"center": g["B"], "left": g["L"], "right": g["R"]}
        infos = {k: probe(p) for k, p in views.items()}
        same_size(views, infos, f"dpd_disp {i}")
        if "D" in g:
            probe(g["D"])
        rows.append(
            {
                "id": i,
                "dataset": "dpd_disp",
                "split": "test",
                "left": str(g["L"]),
                "right": str(g["R"]),
                "center": str(g["B"]),
                "target": "",
                "depth": str(g.get("D", "")),
                "protocol": _PROTOCOL,
                "channels": 3,
            }
        )
    with_depth = sum(1 for r in rows if r["depth"])
    if 0 < with_depth < len(rows):
        scan.warn(f"{root}: {len(rows) - with_depth} of {len(rows)} DPD-disp scenes have no depth ground truth")
    scan.splits["test"] = rows
    return scan
