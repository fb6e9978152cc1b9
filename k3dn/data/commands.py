"""``k3dn data ...``: list, download, manifest and check the registered data sets.

* ``k3dn data list`` — registered data sets, how each is obtained, licence.
* ``k3dn data download <dataset> --dest resources/raw/<ds> [--source NAME] [--no-unpack]`` — verified,
  resumable; exit 3 with instructions when a manual download is needed, 1 on any other failure.
* ``k3dn data manifest <dataset> --root DIR --out resources/manifests/ [--protocol 8bit] [--any-count]``
* ``k3dn data check <dataset> [--root DIR] [--no-decode]`` — exit 1 when anything is missing or unreadable.
"""

from __future__ import annotations

from pathlib import Path


def _default_root(dataset: str) -> Path:
    return Path("resources") / "raw" / dataset


def _list(args) -> int:
    from k3dn.data.catalog import load_catalog

    for name, ds in load_catalog(args.registry).items():
        how = ds.kind if ds.kind == "generated" else "/".join(dict.fromkeys(s.method for s in ds.sources))
        print(f"{name:22s} {how:16s} adapter={ds.adapter or '-':9s} {ds.title}")
        if args.verbose:
            print(f"{'':22s} licence: {ds.licence}\n{'':22s} cite: {ds.citation}")
    return 0


def _download(args) -> int:
    from k3dn.data.downloads import fetch_dataset

    dest = Path(args.dest) if args.dest else _default_root(args.dataset)
    # ManualDownloadRequired (exit 3, with the instructions) and other failures are reported by k3dn.cli.
    rep = fetch_dataset(
        args.dataset, dest, source=args.source, unpack=not args.no_unpack, retries=args.retries, registry=args.registry
    )
    print(rep.summary())
    return 0


def _count_kw(args) -> dict:
    """``--any-count``: the adapter's official-count check off (adapters that check no count take nothing)."""
    from k3dn.data.layouts import COUNT_KEYWORD

    key = COUNT_KEYWORD.get(args.dataset)
    return {key: None} if args.any_count and key else {}


def _manifest(args) -> int:
    from k3dn.data.layouts import write_manifests
    from k3dn.errors import InputError

    root = Path(args.root) if args.root else _default_root(args.dataset)
    kw = _count_kw(args)
    if args.crop:
        if args.dataset != "pixel":
            raise InputError(f"only the pixel adapter crops (not {args.dataset})", where="--crop")
        kw["pixel_crop"] = tuple(args.crop)
    paths = write_manifests(args.dataset, root, args.out, processed=args.processed, protocol=args.protocol, **kw)
    for p in paths:
        print(p)
    return 0


def _check(args) -> int:
    from k3dn.data.check import check_dataset

    root = Path(args.root) if args.root else _default_root(args.dataset)
    kw = _count_kw(args)
    rep = check_dataset(
        args.dataset, root, decode=not args.no_decode, checksums=not args.no_checksums, registry=args.registry, **kw
    )
    print(rep.format())
    return 0 if rep.ok else 1


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("data", help="data sets: list, download, manifest, check")
    p.add_argument("--registry", default=None, help="data-set catalogue YAML (default: k3dn/data/datasets.yaml)")
    sub = p.add_subparsers(dest="data_command", required=True)

    s = sub.add_parser("list", help="registered data sets")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=_list)

    s = sub.add_parser("download", help="fetch and verify a data set (resumable)")
    s.add_argument("dataset")
    s.add_argument("--dest", default=None, help="default resources/raw/<dataset>")
    s.add_argument("--source", default=None, help="catalogue source name (default: official first, then mirrors)")
    s.add_argument("--no-unpack", action="store_true")
    s.add_argument("--retries", type=int, default=4)
    s.set_defaults(func=_download)

    s = sub.add_parser("manifest", help="write <out>/<dataset>_<split>.csv from a data tree")
    s.add_argument("dataset")
    s.add_argument("--root", default=None, help="data tree (default resources/raw/<dataset>)")
    s.add_argument("--out", default="resources/manifests")
    s.add_argument("--processed", default=None, help="derived files (default <root>/k3dn_processed)")
    s.add_argument(
        "--protocol",
        choices=("16bit", "8bit"),
        default=None,
        help="override the reading protocol (file name gets a _<protocol> suffix)",
    )
    s.add_argument("--any-count", action="store_true", help="do not enforce the official sample counts")
    s.add_argument(
        "--crop",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="pixel: the centre crop the ground truth covers (default 1008 1344)",
    )
    s.set_defaults(func=_manifest)

    s = sub.add_parser("check", help="counts, sizes, bit depths, channels, missing/unreadable files")
    s.add_argument("dataset")
    s.add_argument("--root", default=None, help="data tree (default resources/raw/<dataset>)")
    s.add_argument("--no-decode", action="store_true", help="headers only (fast)")
    s.add_argument("--no-checksums", action="store_true")
    s.add_argument("--any-count", action="store_true")
    s.set_defaults(func=_check)
