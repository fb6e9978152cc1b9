"""``k3dn miniature ...``: write the miniature's stand-ins, put the manual ones in place, derive its registries.

* ``k3dn miniature data ITEM --root R --spec JSON --dataset JSON --dest resources/raw/ITEM``
* ``k3dn miniature weights --root R --checkpoints A B ... --ckpt-root resources/checkpoints``
* ``k3dn miniature registries --root R --url http://127.0.0.1:PORT/ --datasets ... --checkpoints ...``

The server is ``python -m k3dn.miniature.serve`` (the workflow starts and stops it).
"""

from __future__ import annotations

import json
from pathlib import Path

from k3dn.data.catalog import DEFAULT_CATALOG


def _checkpoint_registry(root) -> Path:
    """The package's checkpoint catalogue; with user catalogues ($K3DN_CHECKPOINTS, which the workflow sets from
    checkpoint_catalogues) a merged copy of it under ``root``, so their entries are stood in too."""
    from baselines.published import DEFAULT, user_catalogues, write_catalogue

    return write_catalogue(Path(root) / "checkpoints.merged.yaml") if user_catalogues() else DEFAULT


def _data(args) -> int:
    from k3dn.miniature.mirror import load_entries, place_manual
    from k3dn.miniature.standins import write_dataset_standin

    entry = load_entries(DEFAULT_CATALOG, "datasets")[args.item]
    written = write_dataset_standin(args.item, json.loads(args.spec), json.loads(args.dataset), entry, args.root)
    placed = place_manual(args.root, args.item, entry, args.dest)
    print(
        f"{args.item}: {len(written)} stand-in file(s) under {args.root}"
        + (f"; put in place as a user would: {', '.join(map(str, placed))}" if placed else "")
    )
    return 0


def _weights(args) -> int:
    from k3dn.miniature.mirror import load_entries, place_manual
    from k3dn.miniature.weights import write_weight_standins

    entries = load_entries(_checkpoint_registry(args.root), "checkpoints")
    written = write_weight_standins(entries, args.checkpoints, args.root)
    placed = [p for c in args.checkpoints for p in place_manual(args.root, c, entries[c], Path(args.ckpt_root) / c)]
    print(f"{len(args.checkpoints)} checkpoint(s): {len(written)} RANDOM-weight file(s); {len(placed)} put in place")
    return 0


def _registries(args) -> int:
    from k3dn.miniature.mirror import derive_registry

    url = args.url if args.url.endswith("/") else args.url + "/"
    root = Path(args.root)
    derive_registry(DEFAULT_CATALOG, "datasets", set(args.datasets), root, url, root / "datasets.yaml")
    derive_registry(
        _checkpoint_registry(root), "checkpoints", set(args.checkpoints), root, url, root / "checkpoints.yaml"
    )
    print(f"registries for {len(args.datasets)} data set(s) and {len(args.checkpoints)} checkpoint(s) in {root}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("miniature", help="the miniature run's stand-ins, served on 127.0.0.1")
    sub = p.add_subparsers(dest="miniature_command", required=True)

    d = sub.add_parser("data", help="write one data set's stand-in; put its manual-only files in place")
    d.add_argument("item")
    d.add_argument("--root", required=True, type=Path)
    d.add_argument("--spec", default="{}", help="JSON: counts and sizes of the stand-in (miniature.standins.ITEM)")
    d.add_argument("--dataset", default="{}", help="JSON: the workflow config's datasets.ITEM (image_size, crop)")
    d.add_argument("--dest", required=True, type=Path, help="where a user would put its manual files")
    d.set_defaults(func=_data)

    w = sub.add_parser("weights", help="random weights in the published containers of these checkpoints")
    w.add_argument("--root", required=True, type=Path)
    w.add_argument("--checkpoints", nargs="*", default=[])
    w.add_argument("--ckpt-root", default="resources/checkpoints")
    w.set_defaults(func=_weights)

    r = sub.add_parser("registries", help="derived registries pointing at the local server")
    r.add_argument("--root", required=True, type=Path)
    r.add_argument("--url", required=True)
    r.add_argument("--datasets", nargs="*", default=[])
    r.add_argument("--checkpoints", nargs="*", default=[])
    r.set_defaults(func=_registries)
