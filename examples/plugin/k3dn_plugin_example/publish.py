"""Publish the example plugin's weights the way a paper's authors publish theirs, for the suite to load.

    python -m k3dn_plugin_example.publish [--out resources/plugin_example] [--checkpoints resources/checkpoints]

writes, in the working directory of the workflow:

* ``<checkpoints>/example_tiny_dp/tiny_dp.pth``: the weights in their published container (``torch.save`` of
  ``{'epoch', 'state_dict'}``, keys prefixed ``module.``), where the workflow keeps a fetched checkpoint;
* ``<out>/example_tiny_dp.json``: the tensor manifest (every tensor's name, shape and dtype in the file), which
  the suite's contract test and its miniature (random weights in the same container) are built from;
* ``<out>/checkpoints.yaml``: the user catalogue (the schema of ``baselines/checkpoints.yaml``) naming the model
  that loads the file, its manifest (relative to the catalogue), parameter count, input protocol, and its source
  with the file's sha256, which the workflow's fetch verifies before the strict load.

The weights are the network's seeded initial ones: this shows the mechanism, it is not a method. A real method
publishes its file at an https URL (source ``method: http``); this one is made locally, so its source is
``manual`` and its URL a placeholder (example.org).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
from pathlib import Path

import torch
import yaml

from k3dn_plugin_example.model import example_tiny_dp

NAME = "example_tiny_dp"  # the catalogue entry (and the folder the workflow fetches it into)
FILE = "tiny_dp.pth"
CONTAINER = "torch.save dict {'epoch': int, 'state_dict': sd}; every key prefixed 'module.' (DataParallel)"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def publish(out: Path, checkpoints: Path, seed: int = 0, url: str | None = None) -> dict[str, Path]:
    """Write the weights, the manifest and the user catalogue; returns their paths."""
    torch.manual_seed(seed)
    sd = {f"module.{k}": v.detach().clone() for k, v in example_tiny_dp().state_dict().items()}
    buf = io.BytesIO()
    torch.save({"epoch": 1, "state_dict": sd}, buf)
    weights = _write(checkpoints / NAME / FILE, buf.getvalue())
    params = sum(math.prod(v.shape) for v in sd.values())
    manifest = {
        "method": "Example plugin: TinyDP (k3dn_plugin_example.model), seeded initial weights",
        "framework": "pytorch",
        "container": CONTAINER,
        "key_prefix": "module.",
        "how_derived": "k3dn_plugin_example.publish: state_dict() of the registered model, in file order",
        "total_params": params,
        "num_tensors": len(sd),
        "buffers": [],
        "tensors": [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in sd.items()],
    }
    manifest_path = _write(out / f"{NAME}.json", json.dumps(manifest, indent=1).encode())
    source_notes = "made locally by `python -m k3dn_plugin_example.publish`, which puts it here" + (
        "" if url else "; its URL is a placeholder. A published method gives the https URL of its file (method: http)"
    )
    entry = {
        "model": NAME,
        "manifest": manifest_path.name,
        "params": params,
        "file": FILE,
        "container": CONTAINER,
        "licence": "MIT (example)",
        "citation": "Example plugin of the K3DN reproducibility suite (examples/plugin); not a published method.",
        "trained_on": "nothing: the network's seeded initial weights",
        "input_protocol": "16bit",
        "notes": "input: L, R RGB in [0,1]; output (L+R)/2 + a learned residual, clamped to [0,1] at eval",
        "sources": [
            {
                "name": "local",
                "role": "official",
                "method": "manual",
                "files": [
                    {
                        "path": FILE,
                        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                        "url": url or "https://example.org/k3dn-plugin-example/tiny_dp.pth",
                    }
                ],
                "notes": source_notes,
            }
        ],
    }
    header = "# User checkpoint catalogue of the example plugin, written by `python -m k3dn_plugin_example.publish`.\n"
    catalogue = _write(
        out / "checkpoints.yaml", (header + yaml.safe_dump({"checkpoints": {NAME: entry}}, sort_keys=False)).encode()
    )
    return {"weights": weights, "manifest": manifest_path, "catalogue": catalogue}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m k3dn_plugin_example.publish", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("resources/plugin_example"), help="catalogue and manifest folder")
    p.add_argument(
        "--checkpoints", type=Path, default=Path("resources/checkpoints"), help="the workflow's checkpoint folder"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--url", default=None, help="where the file is published (for the catalogue's messages)")
    args = p.parse_args(argv)
    for what, path in publish(args.out, args.checkpoints, args.seed, args.url).items():
        print(f"{what}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
