"""DPD-blur / DPDD (Abuolaim & Brown, ECCV 2020) and the suite's generated ``synth`` set, which is written in
DPDD's layout with identical source and target names and a disparity folder per split."""

from __future__ import annotations

import csv
import re
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from k3dn.data.adapters import ADAPTERS, SPLITS
from k3dn.data.layouts.common import (
    LayoutError,
    Scan,
    find_dirs,
    find_view,
    list_images,
    probe,
    same_size,
)

DPDD_COUNTS = {"train": 350, "val": 74, "test": 76}


def _capture_number(stem: str) -> int | None:
    m = re.search(r"(\d+)$", stem)
    return int(m.group(1)) if m else None


def _dpdd_dirs(root: Path) -> dict[str, dict[str, Path]]:
    """Split -> folders (c, t, l, r, disp) for the official layout or Restormer's re-packaged one."""
    official = find_dirs(root, lambda d: any((d / f"{s}_c" / "source").is_dir() for s in SPLITS))
    if len(official) > 1:
        raise LayoutError(
            f"{root}: several DPDD trees found ({', '.join(map(str, official))}); point --root at one of them"
        )
    if official:
        base = official[0]
        return {
            s: {
                "c": base / f"{s}_c" / "source",
                "t": base / f"{s}_c" / "target",
                "l": base / f"{s}_l" / "source",
                "r": base / f"{s}_r" / "source",
                "disp": base / f"{s}_disp",
            }
            for s in SPLITS
            if (base / f"{s}_c" / "source").is_dir()
        }
    # Restormer: .../{train,val}/{inputC,inputL,inputR,target}, test under .../test/DPDD/ (or test/)
    out = {}
    for d in find_dirs(root, lambda d: (d / "inputC").is_dir() or (d / "inputL").is_dir(), max_depth=7):
        # The nearest folder named after a split, e.g. .../test/DPDD/inputC or .../train/inputC.
        chain = [d, *[p for p in d.parents if root in p.parents or p == root]]
        split = next((p.name for p in chain if p.name in SPLITS), None)
        if split is None:
            raise LayoutError(
                f"{d}: Restormer-style folder (inputC/inputL/...) whose split is not evident "
                "from its path (expected .../train, .../val or .../test/...)"
            )
        if split in out:
            raise LayoutError(f"{d}: second {split} folder (first: {out[split]['c'].parent})")
        out[split] = {"c": d / "inputC", "t": d / "target", "l": d / "inputL", "r": d / "inputR", "disp": d / "disp"}
    if not out:
        raise LayoutError(
            f"{root}: no DPDD layout found (expected {{train,val,test}}_c/source, ... or "
            "Restormer's {train,val,test}/inputC, ...)"
        )
    return out


def _pairing_error(split: str, srcs: list[Path], tgts: list[Path], dirs) -> LayoutError:
    msg = (
        f"{split}: {len(srcs)} source images in {dirs['c']} but {len(tgts)} targets in {dirs['t']}; "
        "pairing by sorted order is undefined"
    )
    for i in range(min(len(srcs), len(tgts))):
        a, b = _capture_number(srcs[i].stem), _capture_number(tgts[i].stem)
        if a is not None and b is not None and abs(a - b) > 3:
            who = "target" if len(srcs) > len(tgts) else "source"
            lone = srcs[i] if who == "target" else tgts[i]
            return LayoutError(
                f"{msg}; first break at {lone}: no {who} within 3 capture numbers (missing {who} for {lone.stem}?)"
            )
    extra = srcs[len(tgts) :] if len(srcs) > len(tgts) else tgts[len(srcs) :]
    return LayoutError(f"{msg}; unmatched at the end: {', '.join(p.name for p in extra[:5])}")


def _load_label_file(p: Path) -> np.ndarray:
    try:
        a = np.load(p, allow_pickle=False) if p.suffix == ".npy" else np.loadtxt(p, ndmin=1)
    except (OSError, ValueError) as e:
        raise LayoutError(f"{p}: cannot read label file ({e})") from e
    a = np.asarray(a).ravel()
    if a.size == 0 or not np.all(np.equal(np.mod(a, 1), 0)):
        raise LayoutError(f"{p}: expected 1-based integer positions, got {a[:5]}...")
    return a.astype(int)


def _official_labels(root: Path, dirs: dict[str, Path], n: int) -> list[str] | None:
    """indoor/outdoor from ``indoor_labels.npy``/``outdoor_labels.npy`` (or .txt): 1-based positions in the
    name-sorted test list (DPDD issue #12; Restormer indexes ``metric[labels - 1]``)."""
    for ext in (".npy", ".txt"):
        cands = [dirs["c"].parent, dirs["c"].parent.parent, root]
        found = next((d for d in cands if (d / f"indoor_labels{ext}").is_file()), None)
        if found is None:
            hits = sorted(root.rglob(f"indoor_labels{ext}"))
            found = hits[0].parent if hits else None
        if found is None:
            continue
        ind = _load_label_file(found / f"indoor_labels{ext}")
        outp = found / f"outdoor_labels{ext}"
        if not outp.is_file():
            raise LayoutError(f"{found / ('indoor_labels' + ext)}: found without {outp.name}")
        out = _load_label_file(outp)
        allpos = np.concatenate([ind, out])
        if allpos.min() < 1 or allpos.max() > n or len(set(allpos.tolist())) != allpos.size or allpos.size != n:
            raise LayoutError(
                f"{found}: indoor/outdoor label files must together list each position 1..{n} "
                f"exactly once (got {ind.size} + {out.size} positions, range "
                f"{allpos.min()}..{allpos.max()})"
            )
        labels = [""] * n
        for i in ind:
            labels[i - 1] = "indoor"
        for i in out:
            labels[i - 1] = "outdoor"
        return labels
    return None


def dpdd_label_list() -> dict[str, str]:
    """Source stem -> indoor/outdoor from the packaged, unverified 3rd-party list (dpdd_labels.csv)."""
    text = resources.files("k3dn.data").joinpath("dpdd_labels.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {r["source_stem"]: r["scene_class_unverified"] for r in rows}


def scan_dpdd(
    root,
    *,
    expected_counts: dict | None = DPDD_COUNTS,
    protocol: str = ADAPTERS["dpdd"].protocol,
    dataset: str = "dpdd",
    same_stems: bool = False,
    need_disparity: bool = False,
) -> Scan:
    """DPD-blur / DPDD: ``{split}_c/source``, ``{split}_c/target``, ``{split}_{l,r}/source`` (or Restormer's
    ``{split}/{inputC,target,inputL,inputR}``).

    Targets pair with sources by sorted order within a split (the official pairing; stems differ, e.g.
    source 1P0A0917 / target 1P0A0916): both lists must have equal length and, where the names end in a
    capture number, the numbers must be within 3. Views are ``<stem>_L.png``/``<stem>_R.png`` or plain
    ``<stem>.png``. ``expected_counts`` (default 350/74/76) is checked for every split present; pass None for
    generated or miniature trees. Test labels: official label files when present (``label_source=official``),
    else the packaged list matched by source stem (``unverified-list``), else empty. A ``{split}_disp`` folder
    supplies ``<stem>.npy`` disparity ground truth (required with ``need_disparity``).
    """
    root = Path(root)
    scan = Scan(dataset, root)
    all_dirs = _dpdd_dirs(root)
    for split in SPLITS:
        if split not in all_dirs:
            if expected_counts and split in expected_counts:
                scan.warn(f"{root}: no {split} split")
            continue
        dirs = all_dirs[split]
        srcs = list_images(dirs["c"], scan)
        if not dirs["t"].is_dir():
            raise LayoutError(f"{dirs['t']}: target folder missing for split {split}")
        tgts = list_images(dirs["t"], scan)
        for key in ("l", "r"):
            if not dirs[key].is_dir():
                raise LayoutError(f"{dirs[key]}: {'left' if key == 'l' else 'right'} view folder missing")
        if len(srcs) != len(tgts):
            raise _pairing_error(split, srcs, tgts, dirs)
        if not srcs:
            raise LayoutError(f"{dirs['c']}: no images")
        if expected_counts and split in expected_counts and len(srcs) != expected_counts[split]:
            raise LayoutError(
                f"{dirs['c']}: {len(srcs)} images, expected {expected_counts[split]} for {dataset} "
                f"{split} (use expected_counts=None / --any-count for generated or partial trees)"
            )
        disp_dir = dirs["disp"] if dirs["disp"].is_dir() else None
        if need_disparity and disp_dir is None:
            raise LayoutError(f"{dirs['disp']}: disparity folder missing for split {split}")
        used = {"l": set(), "r": set()}
        rows = []
        for s, t in tqdm(
            list(zip(srcs, tgts)), desc=f"{dataset} {split}", unit="scene", leave=False, disable=len(srcs) < 50
        ):
            a, b = _capture_number(s.stem), _capture_number(t.stem)
            if same_stems and s.stem != t.stem:
                raise LayoutError(f"{s} pairs with {t} by sorted order, but {dataset} needs identical names")
            if a is not None and b is not None and abs(a - b) > 3:
                raise LayoutError(
                    f"{s} pairs with {t} by sorted order, but their capture numbers differ by "
                    f"{abs(a - b)} (> 3): a file is missing or misnamed in {s.parent} or {t.parent}"
                )
            views = {"center": s, "target": t}
            for key, col, suf in (("l", "left", "_L"), ("r", "right", "_R")):
                v = find_view(dirs[key], s.stem, suf, s.suffix)
                if v is None:
                    raise LayoutError(
                        f"{dirs[key] / (s.stem + suf + s.suffix)}: {col} view of {s.name} missing "
                        f"(looked for {s.stem}{suf}{s.suffix} and {s.name})"
                    )
                used[key].add(v.name)
                views[col] = v
            infos = {k: probe(p) for k, p in views.items()}
            same_size(views, infos, f"{dataset} {split} {s.stem}")
            for k, inf in infos.items():
                if inf.channels not in (3, 4):
                    raise LayoutError(f"{views[k]}: {inf.channels} channel(s), expected RGB")
            row = {
                "id": s.stem,
                "dataset": dataset,
                "split": split,
                "left": str(views["left"]),
                "right": str(views["right"]),
                "center": str(s),
                "target": str(t),
                "protocol": protocol,
                "channels": 3,
            }
            if disp_dir is not None:
                d = disp_dir / f"{s.stem}.npy"
                if not d.is_file():
                    raise LayoutError(f"{d}: disparity ground truth of {s.name} missing")
                row["disparity"] = str(d)
            rows.append(row)
        for key in ("l", "r"):
            for p in list_images(dirs[key], scan):
                if p.name not in used[key]:
                    scan.warn(f"{p}: no source image of this name in {dirs['c']}, ignored")
        if split == "test":
            _attach_labels(scan, root, dirs, rows)
        scan.splits[split] = rows
    if not scan.splits:
        raise LayoutError(f"{root}: no split found")
    return scan


def _attach_labels(scan: Scan, root: Path, dirs, rows: list[dict]) -> None:
    if scan.dataset != "dpdd":
        return
    official = _official_labels(root, dirs, len(rows))
    listed = dpdd_label_list()
    if official is not None:
        disagree = [r["id"] for r, lab in zip(rows, official) if r["id"] in listed and listed[r["id"]] != lab]
        if disagree:
            scan.warn(
                f"official indoor/outdoor labels disagree with the packaged unverified list for "
                f"{len(disagree)} scene(s): {disagree[:8]}"
            )
        for r, lab in zip(rows, official):
            r["label"], r["label_source"] = lab, "official"
        return
    hits = [r for r in rows if r["id"] in listed]
    if hits and len(hits) < len(rows):
        scan.warn(f"{len(rows) - len(hits)} test scene(s) not in the packaged indoor/outdoor list; left unlabelled")
    for r in hits:
        r["label"], r["label_source"] = listed[r["id"]], "unverified-list"
    if hits:
        scan.warn(
            "indoor/outdoor labels from the unverified 3rd-party list (dpdd_labels.csv); put the official "
            "indoor_labels.npy / outdoor_labels.npy next to the test folders to replace them"
        )


def scan_synth(root, *, expected_counts: dict | None = None, protocol: str = ADAPTERS["synth"].protocol) -> Scan:
    """The generated ``synth`` set (``k3dn synth``): :func:`scan_dpdd` with identical source and target names and
    the disparity folder required; no official counts."""
    return scan_dpdd(
        root, expected_counts=expected_counts, protocol=protocol, dataset="synth", same_stems=True, need_disparity=True
    )
