"""The table of layout adapters: each data set's name, splits, reading protocol and whether it is scored.

These facts are defined here once and read by the layout adapters (:mod:`k3dn.data.layouts`), the data-set
registry (:mod:`k3dn.data.catalog`) and the workflow (:mod:`k3dn.workflow`). The module imports nothing
heavy: Snakemake parses the workflow on every call, so the adapters' code is named here as
``"module:function"`` inside :mod:`k3dn.data.layouts` and imported only when a tree is scanned.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Split names a layout may hold, in manifest order.
SPLITS = ("train", "val", "test")
PROTOCOLS = ("16bit", "8bit")


@dataclass(frozen=True)
class Adapter:
    name: str
    #: The splits the workflow expects of it; a test set is named ``<name>_<split>``.
    splits: tuple[str, ...]
    #: How its manifests say to read the images; another protocol adds a suffix to the manifest name.
    protocol: str
    #: False for a set with no all-in-focus target: predicted for the figures, never scored.
    scored: bool
    #: ``"module:function"`` in k3dn.data.layouts: ``scan(root, **kw) -> Scan`` (finds and probes, writes nothing).
    scan: str
    #: ``"module:function"``: ``process(scan, processed, *, progress, **kw) -> Scan``, the derived files the
    #: manifests point at (None: the scan's rows are written as they are).
    process: str | None = None
    #: The scan keyword holding the official sample count; None turns the check off (``--any-count``).
    count_keyword: str | None = None
    #: The process keyword receiving ``write_manifests(pixel_crop=...)`` (only the Pixel set is cropped).
    crop_keyword: str | None = None

    def __post_init__(self):
        if not self.splits or any(s not in SPLITS for s in self.splits):
            raise ValueError(f"adapter {self.name}: splits {self.splits} must be a non-empty subset of {SPLITS}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"adapter {self.name}: protocol {self.protocol!r} is not one of {PROTOCOLS}")
        if self.crop_keyword is not None and self.process is None:
            raise ValueError(f"adapter {self.name}: crop_keyword without a process step")


ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        Adapter("dpdd", ("train", "val", "test"), "16bit", True, "dpdd:scan_dpdd", count_keyword="expected_counts"),
        Adapter(
            "pixel",
            ("test",),
            "16bit",
            True,
            "pixel:scan_pixel",
            process="pixel:process_pixel",
            count_keyword="expected_count",
            crop_keyword="crop",
        ),
        Adapter("dpd_disp", ("test",), "16bit", False, "dpd_disp:scan_dpd_disp"),
        Adapter("ddd_syn", ("train", "test"), "8bit", True, "ddd_syn:scan_ddd_syn", process="ddd_syn:process_ddd_syn"),
        Adapter("rdpd", ("train", "val", "test"), "8bit", True, "rdpd:scan_rdpd"),
        Adapter("synth", ("train", "val", "test"), "16bit", True, "dpdd:scan_synth", count_keyword="expected_counts"),
    )
}

ADAPTER_NAMES = tuple(ADAPTERS)
