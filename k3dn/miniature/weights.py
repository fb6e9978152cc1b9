"""Random weights in every published container, laid out as the checkpoint catalogue's sources publish them.

A checkpoint taken out of an archive (IFAN's ``checkpoints.zip``, DRBNet's ``ckpts.zip``) is written as a member
of a stand-in archive at the same URL; entries that share one archive share one stand-in with all their members.
The files are written by :func:`baselines.weight_manifests.write_fake_checkpoint` (torch.save, Keras HDF5, TensorLayer
npz, per the manifest), so the miniature loads them through the same strict loaders as the published files.
"""

from __future__ import annotations

import io
import tempfile
import zlib
from pathlib import Path

from k3dn.miniature.mirror import chosen_sources, standin_file, write_file, write_zip


def _seed(*names: str) -> int:
    return zlib.crc32("/".join(names).encode()) % (2**31)


def _fake_bytes(manifest: str, seed: int, suffix: str) -> bytes:
    from baselines.weight_manifests import write_fake_checkpoint

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"weights{suffix}"
        write_fake_checkpoint(manifest, p, seed=seed)
        return p.read_bytes()


def write_weight_standins(entries: dict, names, root: Path) -> list[Path]:
    """Stand-ins of the checkpoints ``names`` (entries of ``baselines/checkpoints.yaml``) under ``root``."""
    archives: dict[Path, dict[str, bytes]] = {}
    written = []
    for name in names:
        e = entries[name]
        files = e["file"] if isinstance(e["file"], list) else [e["file"]]
        manifests = e["manifest"] if isinstance(e["manifest"], list) else [e["manifest"]]
        for source in chosen_sources(e):
            for f in source["files"]:
                dest = standin_file(root, name, source, f)
                if f["path"] in files:
                    m = manifests[files.index(f["path"])]
                    written.append(write_file(dest, _fake_bytes(m, _seed(name, f["path"]), Path(f["path"]).suffix)))
                elif f.get("unpack") and e.get("member"):
                    archives.setdefault(dest, {})[e["member"]] = _fake_bytes(
                        manifests[0], _seed(name, e["member"]), Path(e["member"]).suffix
                    )
                else:
                    raise ValueError(
                        f"checkpoint {name!r}: source file {f['path']!r} is neither the weights file "
                        f"{files} nor an archive holding member {e.get('member')!r}"
                    )
    for dest, members in archives.items():
        written.append(write_zip(dest, members))
    return written


def lpips_standins() -> dict[str, bytes]:
    """RANDOM stand-ins of the LPIPS files: the lpips wheel (holding ``lpips/weights/v0.1/alex.pth``, the five
    linear heads) and torchvision's ``alexnet-owt-7be5be79.pth`` (``features.*`` and ``classifier.*``). Their
    checksums cannot be the real ones, so ``k3dn evaluate --lpips-standin`` loads them unverified and says so."""
    import torch

    from k3dn.lpips import CHANNELS, _alexnet_features

    g = torch.Generator().manual_seed(7)
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) * 0.1 for i, c in enumerate(CHANNELS)}
    feats = _alexnet_features()
    with torch.no_grad():
        for p in feats.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    backbone = {f"features.{k}": v for k, v in feats.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(4096, 9216)[:8, :8].clone()  # present in the real file; unused
    buf_h, buf_b = io.BytesIO(), io.BytesIO()
    torch.save(heads, buf_h)
    torch.save(backbone, buf_b)
    wheel = {
        "lpips/__init__.py": b"# stand-in of the lpips 0.1.4 wheel (miniature): weights only\n",
        "lpips/weights/v0.1/alex.pth": buf_h.getvalue(),
    }
    with tempfile.TemporaryDirectory() as d:
        whl = write_zip(Path(d) / "lpips.whl", wheel).read_bytes()
    return {"lpips-0.1.4-py3-none-any.whl": whl, "alexnet-owt-7be5be79.pth": buf_b.getvalue()}
