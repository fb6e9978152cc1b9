"""``k3dn baselines``: list, fetch, verify published checkpoints, or write random-weight stand-ins."""

from __future__ import annotations


def _list(args) -> int:
    from baselines.published import load_checkpoints

    for name, ck in load_checkpoints().items():
        how = ", ".join(f"{s.name}:{s.method}" for s in ck.sources)
        print(f"{name:24s} model={ck.model:20s} params={ck.params:>10,d}  {', '.join(ck.files)}  [{how}]")
    return 0


def _fetch(args) -> int:
    from baselines.published import fetch_checkpoint, verify_checkpoint

    path = fetch_checkpoint(args.name, args.dest, registry=args.registry)
    n = verify_checkpoint(args.name, path, registry=args.registry)
    print(f"{args.name}: {path} loads strictly ({n:,d} parameters)")
    return 0


def _fake(args) -> int:
    from baselines.published import get_checkpoint, verify_checkpoint
    from baselines.weight_manifests import write_fake_checkpoint

    ck = get_checkpoint(args.name)
    for i, (manifest, file) in enumerate(zip(ck.manifests, ck.files)):
        write_fake_checkpoint(manifest, f"{args.dest}/{file}", seed=args.seed + i)
    path = ck.weights_path(args.dest)
    n = verify_checkpoint(args.name, path)
    print(f"{args.name}: RANDOM weights (not the published ones) written to {path} ({n:,d} parameters)")
    return 0


def _verify(args) -> int:
    from baselines.published import verify_checkpoint

    n = verify_checkpoint(args.name, args.weights)
    print(f"{args.name}: {args.weights} loads strictly ({n:,d} parameters)")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("baselines", help="published baseline checkpoints")
    sub = p.add_subparsers(dest="baselines_command", required=True)
    sub.add_parser("list", help="the checkpoint catalogue").set_defaults(func=_list)
    f = sub.add_parser("fetch", help="download, verify and strictly load a published checkpoint")
    f.add_argument("name")
    f.add_argument("--dest", required=True)
    f.add_argument("--registry", default=None, help="checkpoint catalogue YAML (default: baselines/checkpoints.yaml)")
    f.set_defaults(func=_fetch)
    k = sub.add_parser(
        "fake", help="random weights in the published container (tests, the miniature; clearly not real)"
    )
    k.add_argument("name")
    k.add_argument("--dest", required=True)
    k.add_argument("--seed", type=int, default=0)
    k.set_defaults(func=_fake)
    v = sub.add_parser("verify", help="strictly load a checkpoint file")
    v.add_argument("name")
    v.add_argument("--weights", required=True)
    v.set_defaults(func=_verify)
