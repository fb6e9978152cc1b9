"""Per-module parameter counts of the K3DN variants, next to the reconstruction's figures (k3dn_paper.md §3).

Usage: python scripts/count_params.py [--single]
"""

from __future__ import annotations

import argparse

from k3dn.registry import create_model

# reconstruction (k3dn_paper.md §3), millions: total, disparity, PSF blocks, U-net (enc+dec+out), SRP
PAPER = {
    "k3dn_tiny": (3.757, 0.788, 0.434, 1.066, 1.469),
    "k3dn_lightweight": (5.824, 0.788, 0.611, 1.888, 2.537),
    "k3dn_large": (16.099, 0.788, 2.030, 7.739, 5.543),
}
COLUMNS = ("total", "disparity", "psf", "unet", "srp")


def module_counts(model) -> dict[str, int]:
    n = lambda mod: 0 if mod is None else sum(p.numel() for p in mod.parameters())  # noqa: E731
    total, d, p, s = n(model), n(model.disparity), n(model.psf), n(model.srp)
    return dict(total=total, disparity=d, psf=p, unet=total - d - p - s, srp=s)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--single", action="store_true", help="also count the single-image variants")
    args = ap.parse_args(argv)
    names = list(PAPER) + ([f"{n}_single" for n in PAPER] if args.single else [])
    print(f"{'variant':26s}" + "".join(f"{c:>14s}" for c in COLUMNS) + f"{'w/o SRP':>14s}")
    for name in names:
        c = module_counts(create_model(name))
        print(f"{name:26s}" + "".join(f"{c[k]:>14,d}" for k in COLUMNS) + f"{c['total'] - c['srp']:>14,d}")
        if name in PAPER:
            ours = [round(c[k] / 1e6, 3) for k in COLUMNS]
            flags = ["ok" if a == b else "DIFF" for a, b in zip(ours, PAPER[name])]
            print(f"{'  reconstruction (M)':26s}" + "".join(f"{v:>10.3f} {f:>3s}" for v, f in zip(PAPER[name], flags)))


if __name__ == "__main__":
    main()
