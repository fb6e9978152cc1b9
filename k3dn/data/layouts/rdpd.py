"""RDPD (Abuolaim et al., ICCV 2021): the synthetic DP video set, in DPDD's folder scheme with one folder per
sequence."""

from __future__ import annotations

from pathlib import Path

from k3dn.data.adapters import ADAPTERS, SPLITS
from k3dn.data.layouts.common import (
    LayoutError,
    Scan,
    find_dirs,
    find_view,
    list_images,
    natural_key,
    probe,
    same_size,
)

_PROTOCOL = ADAPTERS["rdpd"].protocol


def scan_rdpd(root) -> Scan:
    """RDPD synthetic video set: ``{split}_{c,l,r}/source/seq_NNN/<frame>.png`` and
    ``{split}_c/target/seq_NNN/<frame>.png`` (same frame names as the sources), 8-bit. Ids ``seq_NNN_<frame>``.
    As in the official generator, val and test hold the same sequences."""
    root = Path(root)
    hits = find_dirs(root, lambda d: any((d / f"{s}_c" / "source").is_dir() for s in SPLITS), max_depth=3)
    if not hits:
        raise LayoutError(f"{root}: no RDPD layout found (expected {{train,val,test}}_c/source/seq_NNN/...)")
    base = hits[0]
    scan = Scan("rdpd", root)
    for split in SPLITS:
        csrc = base / f"{split}_c" / "source"
        if not csrc.is_dir():
            continue
        rows = []
        seqs = sorted((d for d in csrc.iterdir() if d.is_dir()), key=lambda d: natural_key(d.name))
        for p in csrc.iterdir():
            if p.is_file():
                scan.warn(f"{p}: file outside a seq_NNN folder, ignored")
        if not seqs:
            raise LayoutError(f"{csrc}: no sequence folders")
        for seq in seqs:
            for s in list_images(seq, scan):
                views = {"center": s}
                t = base / f"{split}_c" / "target" / seq.name / s.name
                if not t.is_file():
                    raise LayoutError(f"{t}: target of {s} missing")
                views["target"] = t
                for key, col, suf in (("l", "left", "_L"), ("r", "right", "_R")):
                    folder = base / f"{split}_{key}" / "source" / seq.name
                    v = find_view(folder, s.stem, suf, s.suffix)
                    if v is None:
                        raise LayoutError(f"{folder / s.name}: {col} view of {s} missing")
                    views[col] = v
                infos = {k: probe(p) for k, p in views.items()}
                same_size(views, infos, f"rdpd {seq.name}/{s.name}")
                rows.append(
                    {
                        "id": f"{seq.name}_{s.stem}",
                        "dataset": "rdpd",
                        "split": split,
                        "left": str(views["left"]),
                        "right": str(views["right"]),
                        "center": str(s),
                        "target": str(t),
                        "protocol": _PROTOCOL,
                        "channels": 3,
                    }
                )
        if not rows:
            raise LayoutError(f"{csrc}: no frames")
        scan.splits[split] = rows
    return scan
