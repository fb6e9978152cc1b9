"""What every layout adapter shares: the scan result, the error it raises, and the file-finding helpers."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from k3dn.data.probe import IMAGE_EXTS, ImageInfo, ProbeError, probe_image

# One logger for the package, as when it was one module.
log = logging.getLogger("k3dn.data.layouts")


class LayoutError(ValueError):
    pass


@dataclass
class Scan:
    dataset: str
    root: Path
    splits: dict[str, list[dict]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    extra_files: list[tuple[str, str]] = field(default_factory=list)  # (role, path) outside the manifest

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log.warning(msg)


def natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTS


def list_images(folder: Path, scan: Scan) -> list[Path]:
    """Image files of ``folder`` in natural order; other files are reported and ignored."""
    if not folder.is_dir():
        raise LayoutError(f"{folder}: folder not found")
    imgs = []
    for p in folder.iterdir():
        if p.is_dir():
            continue
        if is_image(p) and not p.name.startswith("."):
            imgs.append(p)
        else:
            scan.warn(f"{p}: not an image file, ignored")
    return sorted(imgs, key=lambda p: natural_key(p.name))


def probe(p: Path) -> ImageInfo:
    try:
        return probe_image(p)
    except ProbeError as e:
        raise LayoutError(str(e)) from e


def same_size(files: dict[str, Path], infos: dict[str, ImageInfo], what: str) -> None:
    sizes = {k: infos[k].size for k in files}
    if len(set(sizes.values())) > 1:
        desc = ", ".join(f"{k} {files[k].name} {w}x{h}" for k, (w, h) in sizes.items())
        raise LayoutError(f"{what}: views differ in size (WxH): {desc}")


def find_dirs(root: Path, pred, max_depth: int = 4) -> list[Path]:
    """Folders under ``root`` (itself included) for which ``pred(folder)`` holds, shallowest first."""
    out, level = [], [root]
    for _ in range(max_depth + 1):
        nxt = []
        for d in level:
            if pred(d):
                out.append(d)
                continue
            try:
                nxt.extend(sorted(c for c in d.iterdir() if c.is_dir() and not c.name.startswith(".")))
            except OSError:
                pass
        level = nxt
    return out


def find_view(folder: Path, stem: str, suffix: str, ext: str) -> Path | None:
    """``<stem>_L.png`` (the official DPDD naming) or ``<stem>.png``; other image extensions accepted."""
    for name in (f"{stem}{suffix}", stem):
        for e in (ext, *IMAGE_EXTS):
            for cand in (folder / f"{name}{e}", folder / f"{name}{e.upper()}"):
                if cand.is_file():
                    return cand
    return None
