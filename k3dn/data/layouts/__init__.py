"""Layout adapters: every data set's folder tree -> the suite's manifests (one CSV per data set and split).

Each adapter has a *scan* step (find and pair the files, probe every image header, no writing) and a *write*
step (:func:`write_manifests`: any processing the manifest needs, then one manifest per split). Problems
raise :class:`LayoutError` naming the file or folder and what is wrong. Which adapter a data set uses, its
splits and its default protocol are in the table :data:`k3dn.data.adapters.ADAPTERS`.

Rules shared by all adapters:

* Image files are ``.png .jpg .jpeg .tif .tiff`` (any case). Everything else inside the data folders (README,
  ``.DS_Store``, ``Thumbs.db``, ...) is **ignored and reported** as a warning; so are image files in the
  left/right folders that no source image names. An extra or missing image among the sources or targets is
  an **error**, because it would silently shift a by-order pairing.
* Every image's header is probed (size, bit depth, channels, truncation); views of one sample must have
  the same size (portrait scenes are fine, mixed orientations inside one sample are not).
* Manifest files are ``<out>/<dataset>_<split>.csv``; a protocol other than the data set's default adds a
  suffix (``dpdd_test_8bit.csv``) so both can live side by side.

Data-set specifics are in the data sets' modules (``dpdd``, ``pixel``, ``dpd_disp``, ``ddd_syn``, ``rdpd``).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from k3dn.data.adapters import ADAPTERS, SPLITS, Adapter
from k3dn.data.layouts.common import LayoutError, Scan
from k3dn.data.layouts.ddd_syn import process_ddd_syn, scan_ddd_syn
from k3dn.data.layouts.dpd_disp import scan_dpd_disp
from k3dn.data.layouts.dpdd import DPDD_COUNTS, dpdd_label_list, scan_dpdd, scan_synth
from k3dn.data.layouts.pixel import (
    PIXEL_BLACK,
    PIXEL_COUNT,
    PIXEL_CROP,
    PIXEL_GRID,
    PIXEL_PATCH,
    PIXEL_WHITE,
    PIXEL_WINDOW,
    load_pixel_kernels,
    pixel_vignetting_ratio,
    process_pixel,
    scan_pixel,
)
from k3dn.data.layouts.rdpd import scan_rdpd
from k3dn.data.manifest import write_manifest

__all__ = [
    "COUNT_KEYWORD",
    "DEFAULT_PROTOCOL",
    "DPDD_COUNTS",
    "PIXEL_BLACK",
    "PIXEL_COUNT",
    "PIXEL_CROP",
    "PIXEL_GRID",
    "PIXEL_PATCH",
    "PIXEL_WHITE",
    "PIXEL_WINDOW",
    "SPLITS",
    "LayoutError",
    "Scan",
    "dpdd_label_list",
    "load_pixel_kernels",
    "pixel_vignetting_ratio",
    "process_ddd_syn",
    "process_pixel",
    "scan",
    "scan_ddd_syn",
    "scan_dpd_disp",
    "scan_dpdd",
    "scan_pixel",
    "scan_rdpd",
    "scan_synth",
    "write_manifests",
]

#: The keyword of each adapter that checks an official sample count (None turns the check off).
COUNT_KEYWORD = {a.name: a.count_keyword for a in ADAPTERS.values() if a.count_keyword}
DEFAULT_PROTOCOL = {a.name: a.protocol for a in ADAPTERS.values()}


def _resolve(ref: str):
    """``"module:function"`` of the adapter table -> the function in ``k3dn.data.layouts.<module>``."""
    module, name = ref.split(":")
    return getattr(import_module(f"{__name__}.{module}"), name)


def _adapter(dataset: str) -> Adapter:
    try:
        return ADAPTERS[dataset]
    except KeyError:
        raise LayoutError(f"no layout adapter for data set {dataset!r}; known: {sorted(ADAPTERS)}") from None


def scan(dataset: str, root, **kw) -> Scan:
    """Scan ``root`` with the adapter of ``dataset`` (no files written)."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: folder not found")
    return _resolve(_adapter(dataset).scan)(root, **kw)


def write_manifests(
    dataset: str,
    root,
    out_dir,
    *,
    processed=None,
    protocol: str | None = None,
    progress: bool = True,
    pixel_crop: tuple[int, int] = PIXEL_CROP,
    **scan_kw,
) -> list[Path]:
    """Scan ``root``, do the processing the data set needs, write ``<out_dir>/<dataset>_<split>[_<protocol>].csv``.

    ``processed`` (default ``<root>/k3dn_processed``) receives derived files: the Pixel set's corrected crops and
    kernel ``.npz``, DDD-syn's disparity ``.npy``. ``protocol`` overrides the data set's default reading protocol
    (e.g. ``8bit`` for the legacy DPDD baselines). Returns the manifest paths.
    """
    root = Path(root)
    sc = scan(dataset, root, **scan_kw)
    adapter = ADAPTERS[dataset]
    processed = Path(processed) if processed is not None else root / "k3dn_processed"
    if adapter.process is not None:
        process_kw = {adapter.crop_keyword: pixel_crop} if adapter.crop_keyword else {}
        sc = _resolve(adapter.process)(sc, processed, progress=progress, **process_kw)
    out_dir = Path(out_dir)
    paths = []
    for split, rows in sc.splits.items():
        if protocol is not None:
            for r in rows:
                r["protocol"] = protocol
        suffix = f"_{protocol}" if protocol not in (None, adapter.protocol) else ""
        paths.append(write_manifest(rows, out_dir / f"{dataset}_{split}{suffix}.csv"))
    return paths
