"""Miniature stand-ins of the data sets, each in its real layout and container, rendered by the suite.

Every scene comes from the suite's DP renderer (:mod:`k3dn.synth`): a textured, layered scene, its signed CoC
map, the left/right half-aperture views and the all-in-focus image. What each writer reproduces of the real
set (file names, folders, containers, bit depths, black level, calibration) is said in its docstring; the
scale (counts, sizes) comes from the miniature config. Nothing here is real data: these files test the
download, unpacking, layout adapters and the whole DAG, not any method.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np

from k3dn.miniature.mirror import chosen_sources, standin_file, write_file, write_zip

#: |CoC| clip of the stand-ins' scenes, in pixels: a few pixels of blur at the miniature's sizes.
MAX_COC_PX = 6.0


# ---------------------------------------------------------------------------------------------- scenes
def render_scene(size, seed: int, index: int, linear: bool = False) -> dict[str, np.ndarray]:
    """One rendered DP scene of ``size`` (H, W): ``c, l, r, target`` RGB floats (sRGB, or linear light with
    ``linear``), ``coc`` the signed CoC map."""
    from k3dn.synth.dataset import SynthConfig, draw_sample, render_sample
    from k3dn.synth.scenes import srgb_to_linear

    cfg = SynthConfig(
        size=tuple(int(s) for s in size),
        seed=seed,
        count_train=index + 1,
        max_coc_px=MAX_COC_PX,
        crop=8,
        n_layers=8,
        linear_light=True,
    )
    scene, coc, _ = draw_sample(cfg, "train", index)
    out = render_sample(cfg, scene, coc)
    if linear:
        out = {k: (srgb_to_linear(v) if k in ("c", "l", "r", "target") else v) for k, v in out.items()}
    return out


def _png(img: np.ndarray, bits: int = 16) -> bytes:
    import cv2

    a = np.clip(np.asarray(img, np.float64), 0, 1)
    q = np.round(a * (2**bits - 1)).astype(np.uint16 if bits == 16 else np.uint8)
    if q.ndim == 3:
        q = q[..., ::-1]  # RGB -> OpenCV's BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(q))
    assert ok
    return buf.tobytes()


def _encode(img: np.ndarray, ext: str) -> bytes:
    import cv2

    q = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    if q.ndim == 3:
        q = q[..., ::-1]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(q))
    assert ok
    return buf.tobytes()


def _raw_png(counts: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(counts.astype(np.uint16)))
    assert ok
    return buf.tobytes()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- writers
def dpdd_members(spec: dict, image_size, prefix: str = "DPDD/") -> tuple[dict[str, bytes], dict[str, bytes]]:
    """DPD-blur in the official folder layout: ``{split}_c/source/<stem>.png``, ``{split}_c/target/<stem'>.png``
    (the target's own capture number, one below the source's), ``{split}_l/source/<stem>_L.png``,
    ``{split}_r/source/<stem>_R.png``, 16-bit sRGB RGB. Training images have the config's ``image_size`` (the
    crops of every run must fit them), validation and test images ``eval_size``. Returns the archive members and
    the official label files ``indoor_labels.npy`` / ``outdoor_labels.npy`` (1-based positions in the sorted test
    list: the first half indoor)."""
    members, capture = {}, 917
    for split, n in (("train", spec["train"]), ("val", spec["val"]), ("test", spec["test"])):
        size = image_size if split == "train" else spec["eval_size"]
        for _ in range(int(n)):
            s = render_scene(size, seed=11, index=len(members))
            src, tgt = f"1P0A{capture:04d}", f"1P0A{capture - 1:04d}"
            capture += 3
            members[f"{prefix}{split}_c/source/{src}.png"] = _png(s["c"])
            members[f"{prefix}{split}_c/target/{tgt}.png"] = _png(s["target"])
            members[f"{prefix}{split}_l/source/{src}_L.png"] = _png(s["l"])
            members[f"{prefix}{split}_r/source/{src}_R.png"] = _png(s["r"])
    n_test = int(spec["test"])
    positions = np.arange(1, n_test + 1)
    labels = {
        "indoor_labels.npy": _npy(positions[: (n_test + 1) // 2]),
        "outdoor_labels.npy": _npy(positions[(n_test + 1) // 2 :]),
    }
    return members, labels


def write_pixel(out_dir: Path, spec: dict, crop) -> list[Path]:
    """The Pixel 4 set of Xin et al. as in its repository (``DP_data_pixel_4/``): ``NNN_left.png`` /
    ``NNN_right.png`` single-channel 16-bit raw green counts, 14-bit with black level 1024, frames 3/2 of the
    ``crop`` (1512x2016 for the real 1008x1344); ``calibration/white_sheet_{left,right}.png`` (the same raw
    format, a white sheet under each view's vignetting); ``calibration/blur_kernels_{left,right}.npy`` float32
    ``(48, F, F)``, one half-disk kernel per cell of the crop's 6x8 grid; ``gt_all_in_focus_im/NNN_gt.png``
    (16-bit, linear, on the corrected views' scale) and ``gt_defocus_map/NNN_gt.png`` (8-bit, min-max |CoC|).
    Views are linear light with each side's vignetting, so the adapter's white-sheet correction undoes it."""
    from k3dn.synth.psf import half_aperture_psfs

    base = Path(out_dir) / "DP_data_pixel_4"
    ch, cw = (int(c) for c in crop)
    fh, fw = ch * 3 // 2, cw * 3 // 2
    oy, ox = (fh - ch) // 2, (fw - cw) // 2
    x = np.linspace(0.0, 1.0, fw)[None, :].repeat(fh, 0)
    vig = {"left": 0.8 + 0.2 * x, "right": 1.0 - 0.2 * x}  # each half-aperture sees one side brighter
    black, white = 1024, 2**14 - 1

    def raw(linear):
        return 1024 + np.round(np.clip(linear, 0, 1) * white)

    written = []
    for side in ("left", "right"):
        written.append(write_file(base / "calibration" / f"white_sheet_{side}.png", _raw_png(raw(0.9 * vig[side]))))
    radii = 1.5 + 1.5 * np.hypot(*np.meshgrid(np.linspace(-1, 1, 8), np.linspace(-1, 1, 6))).ravel() / np.sqrt(2)
    size = 2 * int(np.ceil(radii.max())) + 3
    kernels = {
        s: np.stack([half_aperture_psfs(2 * r, size=size)[i] for r in radii]).astype(np.float32)
        for i, s in enumerate(("left", "right"))
    }
    for side, k in kernels.items():
        written.append(write_file(base / "calibration" / f"blur_kernels_{side}.npy", _npy(k)))
    for n in range(1, int(spec["scenes"]) + 1):
        s = render_scene((fh, fw), seed=23, index=n - 1, linear=True)
        grey = {k: 0.5 * s[k].mean(axis=-1) for k in ("l", "r", "target")}  # raw green is dark: half exposure
        written.append(write_file(base / f"{n:03d}_left.png", _raw_png(raw(grey["l"] * vig["left"]))))
        written.append(write_file(base / f"{n:03d}_right.png", _raw_png(raw(grey["r"] * vig["right"]))))
        cut = (slice(oy, oy + ch), slice(ox, ox + cw))
        gt = (grey["target"] * vig["left"])[cut]
        written.append(write_file(base / "gt_all_in_focus_im" / f"{n:03d}_gt.png", _png(gt, 16)))
        # min-max over the frame, in 1..255: 0 means "unlabelled" in the published maps
        d = np.abs(s["coc"])
        d = (1 + 254 * (d - d.min()) / max(float(d.max() - d.min()), 1e-9)) / 255
        written.append(write_file(base / "gt_defocus_map" / f"{n:03d}_gt.png", _png(d[cut], 8)))
    assert black == 1024
    return written


def dpd_disp_repo(out_dir: Path, spec: dict) -> list[Path]:
    """DPD-disp as in its git repository: ``Qualitative/0001_{B,L,R}.png ...`` and ``Quantitative/0101_{B,L,R}.png
    ...`` (combined, left, right; 16-bit sRGB RGB), no depth ground truth."""
    written = []
    for folder, first, n in (("Qualitative", 1, spec["qualitative"]), ("Quantitative", 101, spec["quantitative"])):
        for i in range(int(n)):
            s = render_scene(spec["size"], seed=31, index=len(written) // 3)
            sid = f"{first + i:04d}"
            for key, view in (("B", "c"), ("L", "l"), ("R", "r")):
                written.append(write_file(Path(out_dir) / folder / f"{sid}_{key}.png", _png(s[view])))
    return written


def dpd_disp_archive_members(spec: dict) -> dict[str, bytes]:
    """DPD-disp as in its Drive archive: one flat folder ``ICCP2020_DP_dataset/`` of ``<id>_B.jpg``,
    ``<id>_L.jpg``, ``<id>_R.jpg`` (8-bit JPEG) and ``<id>_D.TIF`` (8-bit single-channel inverse depth,
    affine-normalised so the farthest point is 0), 3-digit ids."""
    members = {}
    for i in range(int(spec["archive"])):
        s = render_scene(spec["size"], seed=37, index=i)
        sid = f"{10 * (i + 1):03d}"
        for key, view in (("B", "c"), ("L", "l"), ("R", "r")):
            members[f"ICCP2020_DP_dataset/{sid}_{key}.jpg"] = _encode(s[view], ".jpg")
        inv = -s["coc"]
        inv = (inv - inv.min()) / max(float(inv.max() - inv.min()), 1e-9)
        members[f"ICCP2020_DP_dataset/{sid}_D.TIF"] = _encode(inv, ".tif")
    return members


# ---------------------------------------------------------------------------------------------- per item
def _place_tree(build: Path, made, files: dict) -> list[Path]:
    """Copy the files of a tree rendered under ``build`` to the stand-in paths of the registry files they are
    (``files``: registry path -> stand-in path); files the registry does not list are left out."""
    made = {str(p.relative_to(build)): p for p in made}
    placed = []
    for path, dest in files.items():
        if path in made:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made[path], dest)
            placed.append(dest)
    return placed


def write_dataset_standin(item: str, spec: dict, dataset_config: dict, entry: dict, root: Path) -> list[Path]:
    """Write the stand-in of registry ``entry`` (data set ``item``) for every file of its chosen sources."""
    from k3dn.synth.ddd_syn import write_standin_nyu
    from k3dn.synth.rdpd import write_standin_synthia

    root = Path(root)
    build = root / "build" / item
    if build.exists():
        shutil.rmtree(build)
    written = []
    for source in chosen_sources(entry):
        files = {f["path"]: standin_file(root, item, source, f) for f in source["files"]}
        if item == "dpdd":
            members, labels = dpdd_members(spec, dataset_config["image_size"])
            for path, dest in files.items():
                if path.endswith(".zip"):
                    written.append(write_zip(dest, members))
                elif path in labels:
                    written.append(write_file(dest, labels[path]))
        elif item == "pixel":
            written += _place_tree(build, write_pixel(build, spec, dataset_config["crop"]), files)
        elif item == "dpd_disp":
            if source["method"] == "gdrive" or any(p.endswith(".zip") for p in files):
                written += [write_zip(d, dpd_disp_archive_members(spec)) for d in files.values()]
            else:
                written += _place_tree(build, dpd_disp_repo(build, spec), files)
        elif item == "nyu_depth_v2_labeled":
            for dest in files.values():
                written.append(write_standin_nyu(dest, n=int(spec["images"]), size=tuple(spec["size"]), seed=41))
        elif item == "synthia_sf":
            tree = write_standin_synthia(
                build / "SYNTHIA-SF",
                n_seq=int(spec["sequences"]),
                n_frames=int(spec["frames"]),
                size=tuple(dataset_config["image_size"]),
                seed=43,
            )
            members = {str(p.relative_to(build)): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}
            written += [write_zip(d, members) for d in files.values()]
        elif item == "lpips_weights":
            from k3dn.miniature.weights import lpips_standins

            made = lpips_standins()
            for path, dest in files.items():
                written.append(write_file(dest, made[path]))
        else:
            raise ValueError(f"no miniature stand-in for data set {item!r}")
    if build.exists():
        shutil.rmtree(build)
    return written


def write_dpd_disp_archive(dest: Path, spec: dict) -> Path:
    """The Drive archive layout alone (tests of the second DPD-disp source)."""
    return write_zip(Path(dest), dpd_disp_archive_members(spec))
