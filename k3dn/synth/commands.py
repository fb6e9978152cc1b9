"""``k3dn synth ...``: render the embedded synthetic DP set, regenerate DDD-syn / RDPD, write stand-ins."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from k3dn.errors import InputError


def _range(text: str) -> range:
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected FIRST:LAST (1-based, inclusive), got {text!r}") from e
    return range(a, b + 1)


def _cmd_dp(args) -> int:
    import yaml

    from k3dn.synth.dataset import SynthConfig, write_synth_dataset

    values = {}
    if args.config:
        path = Path(args.config)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise InputError(f"cannot read synth config ({e})", where=path) from e
        if not isinstance(values, dict):
            raise InputError("synth config must be a mapping of SynthConfig fields", where=path)
    cli = {
        "size": args.size and tuple(args.size),
        "count_train": args.count_train,
        "count_val": args.count_val,
        "count_test": args.count_test,
        "seed": args.seed,
        "crop": args.crop,
        "n_layers": args.layers,
        "kernel": args.kernel,
        "max_coc_px": args.max_coc,
        "f_numbers": args.f_numbers and tuple(args.f_numbers),
        "pixel_pitch_um": args.pixel_pitch_um,
        "focal_mm": args.focal_mm,
    }
    values.update({k: v for k, v in cli.items() if v is not None})
    try:
        cfg = SynthConfig.from_json(values)
        meta = write_synth_dataset(args.out, cfg, progress=not args.quiet)
    except ValueError as e:
        raise InputError(str(e)) from e
    print(json.dumps({"out": str(args.out), "rendered": meta["rendered_this_run"], "config_hash": meta["config_hash"]}))
    return 0


def _cmd_ddd(args) -> int:
    from k3dn.synth.ddd_syn import generate_ddd_syn

    nyu = args.nyu / "nyu_depth_v2_labeled.mat" if args.nyu.is_dir() else args.nyu  # the download's folder
    try:
        res = generate_ddd_syn(
            nyu,
            args.out,
            train_images=args.train_images,
            test_images=args.test_images,
            test1_images=args.test1_images,
            limit=args.limit,
            n_layers=args.layers,
            out_size=tuple(args.out_size),
            progress=not args.quiet,
        )
    except ValueError as e:
        raise InputError(str(e)) from e
    print(json.dumps(res))
    return 0


def _cmd_rdpd(args) -> int:
    from k3dn.synth.rdpd import NUM_DEPTH_LAYERS, generate_rdpd

    try:
        res = generate_rdpd(
            args.synthia,
            args.out,
            sets=args.sets,
            limit=args.limit,
            n_layers=args.layers or NUM_DEPTH_LAYERS,
            barrel=tuple(args.barrel) if args.barrel else None,
            progress=not args.quiet,
        )
    except ValueError as e:
        raise InputError(str(e)) from e
    print(json.dumps(res))
    return 0


def _cmd_standin_nyu(args) -> int:
    from k3dn.synth.ddd_syn import write_standin_nyu

    print(write_standin_nyu(args.out, n=args.count, size=tuple(args.size), seed=args.seed))
    return 0


def _cmd_standin_synthia(args) -> int:
    from k3dn.synth.rdpd import write_standin_synthia

    print(
        write_standin_synthia(
            args.out, n_seq=args.sequences, n_frames=args.frames, size=tuple(args.size), seed=args.seed
        )
    )
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("synth", help="synthetic dual-pixel data: render, DDD-syn, RDPD, stand-ins")
    sub = p.add_subparsers(dest="synth_command", required=True)

    dp = sub.add_parser("dp", help="render the embedded synthetic DP set (DPDD layout, 16-bit)")
    dp.add_argument("--out", required=True, type=Path)
    dp.add_argument("--config", help="YAML mapping of SynthConfig fields; command-line flags override it")
    dp.add_argument("--size", nargs=2, type=int, metavar=("H", "W"))
    dp.add_argument("--count-train", type=int)
    dp.add_argument("--count-val", type=int)
    dp.add_argument("--count-test", type=int)
    dp.add_argument("--seed", type=int)
    dp.add_argument("--crop", type=int, help="px rendered beyond each side and cropped away")
    dp.add_argument("--layers", type=int, help="depth (CoC) layers")
    dp.add_argument("--kernel", choices=("disk", "butterworth"))
    dp.add_argument("--max-coc", type=float, help="clip |CoC| (px)")
    dp.add_argument("--f-numbers", nargs="+", type=float)
    dp.add_argument("--focal-mm", type=float)
    dp.add_argument("--pixel-pitch-um", type=float)
    dp.add_argument("--quiet", action="store_true")
    dp.set_defaults(func=_cmd_dp)

    d = sub.add_parser("ddd-syn", help="regenerate DDD-syn from nyu_depth_v2_labeled.mat")
    d.add_argument("--nyu", required=True, type=Path, help="nyu_depth_v2_labeled.mat, or the folder holding it")
    d.add_argument("--out", required=True, type=Path)
    d.add_argument("--limit", type=int, help="first N NYU images of each group only")
    d.add_argument("--train-images", type=_range, default=range(1, 1001), metavar="A:B")
    d.add_argument("--test-images", type=_range, default=range(1001, 1351), metavar="A:B")
    d.add_argument("--test1-images", type=_range, default=range(1001, 1151), metavar="A:B")
    d.add_argument("--layers", type=int, default=32)
    d.add_argument("--out-size", nargs=2, type=int, default=[480, 640], metavar=("H", "W"))
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_ddd)

    r = sub.add_parser("rdpd", help="regenerate the RDPD synthetic DP video set from SYNTHIA-SF")
    r.add_argument("--synthia", required=True, type=Path, help="SYNTHIA-SF folder (SEQ1..SEQ6 in it or below it)")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--limit", type=int, help="first N frames of each sequence only")
    r.add_argument("--sets", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    r.add_argument("--layers", type=int, help="depth intervals (default 2000)")
    r.add_argument(
        "--barrel",
        type=float,
        nargs="+",
        metavar="A B C [D]",
        help="ImageMagick-style barrel coefficients (see k3dn.synth.rdpd.barrel_distort)",
    )
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=_cmd_rdpd)

    sn = sub.add_parser("standin-nyu", help="write a tiny stand-in nyu_depth_v2_labeled.mat (tests)")
    sn.add_argument("--out", required=True, type=Path)
    sn.add_argument("--count", type=int, default=4)
    sn.add_argument("--size", nargs=2, type=int, default=[60, 80], metavar=("H", "W"))
    sn.add_argument("--seed", type=int, default=0)
    sn.set_defaults(func=_cmd_standin_nyu)

    ss = sub.add_parser("standin-synthia", help="write a tiny stand-in SYNTHIA-SF tree (tests)")
    ss.add_argument("--out", required=True, type=Path)
    ss.add_argument("--sequences", type=int, default=6)
    ss.add_argument("--frames", type=int, default=2)
    ss.add_argument("--size", nargs=2, type=int, default=[36, 64], metavar=("H", "W"))
    ss.add_argument("--seed", type=int, default=0)
    ss.set_defaults(func=_cmd_standin_synthia)
