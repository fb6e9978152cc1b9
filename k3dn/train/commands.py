"""``k3dn train`` (the two-stage recipe, one process or torchrun/DDP) and ``k3dn deblur`` (one DP pair).

Several GPUs: ``torchrun --standalone --nproc-per-node=G -m k3dn.cli train --config ... --out ...``, or
``k3dn train --nproc G ...``, which relaunches itself under torchrun.
"""

from __future__ import annotations

import os
import subprocess
import sys


def _cmd_train(args) -> int:
    from k3dn.cli import global_flags
    from k3dn.train.config import load_config
    from k3dn.train.loop import train

    if args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={args.nproc}",
            "-m",
            "k3dn.cli",
            *global_flags(args),
            "train",
            "--config",
            args.config,
            "--out",
            args.out,
        ]
        for s in args.set:
            cmd += ["--set", s]
        if args.resume:
            cmd.append("--resume")
        if args.fresh:
            cmd.append("--fresh")
        return subprocess.call(cmd)
    # a bad config, a failed resume or a diverged loss is reported by k3dn.cli (one line, exit 1)
    cfg = load_config(args.config, args.set)
    summary = train(cfg, args.out, resume="require" if args.resume else "never" if args.fresh else "auto")
    if int(os.environ.get("RANK", "0")) == 0:
        msg = f"k3dn train: {'stopped' if summary['stopped'] else 'finished'} at iteration {summary['iteration']}"
        if "psnr" in summary:
            msg += f", val PSNR {summary['psnr']:.2f} dB (input {summary['input_psnr']:.2f} dB)"
        print(msg + f", {summary['elapsed_s']:.0f} s")
    return 0


def _cmd_deblur(args) -> int:
    from k3dn.infer import deblur_files, model_from_args

    model = model_from_args(args)
    path = deblur_files(
        model,
        args.left,
        args.right,
        args.out,
        center=args.center,
        size_mode=args.size_mode,
        device=args.device,
        dtype=args.dtype,
    )
    print(path)
    return 0


def add_commands(subparsers) -> None:
    from k3dn.infer import add_model_args

    p = subparsers.add_parser("train", help="train a registered model (K3DN's two-stage recipe)")
    p.add_argument("--config", required=True, help="config/train/*.yaml")
    p.add_argument("--out", required=True, help="run folder: model.safetensors, model.json, log.csv, state/")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set stages=[200,200] --set data.batch_size=2",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--resume",
        action="store_true",
        help="require existing state to resume from (without it: resume if state exists)",
    )
    g.add_argument("--fresh", action="store_true", help="ignore existing state and start from iteration 0")
    p.add_argument("--nproc", type=int, default=1, help="processes (GPUs) on this node; >1 relaunches under torchrun")
    p.set_defaults(func=_cmd_train)

    d = subparsers.add_parser("deblur", help="deblur one DP pair with a trained run or a registered model")
    add_model_args(d)
    d.add_argument("--left", required=True)
    d.add_argument("--right", required=True)
    d.add_argument("--center", help="centre view (default: mean of left and right where the model reads it)")
    d.add_argument("--out", required=True, help="output 16-bit PNG")
    d.set_defaults(func=_cmd_deblur)
