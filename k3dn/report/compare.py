"""Any two methods, paired: ``k3dn compare A B --test T`` and the pairwise matrix of a test set.

Both read the per-image metrics ``k3dn evaluate`` wrote (``<metrics-root>/<method>/<test>.csv``) and pair the
two methods image by image (by ``id``, in sorted id order whatever order the files list them in). Pairing is only
honest when both files score the same images the same way, so a pair is refused (one line naming the file) when an
id is duplicated, the two id sets differ, an image was scored under another protocol, carries another label, or
the files were scored against other target files (``data_sha256``).

What a comparison reports, per group (``combined``, then each indoor/outdoor label where the set has labels) and
per metric (PSNR, SSIM), with differences taken as A minus B (positive: A is better):

* the mean difference and its paired percentile-bootstrap 95% interval (:func:`k3dn.report.stats.paired_diff_ci`,
  the same ``N_BOOT`` resamples and ``SEED`` as the tables), and whether the interval excludes 0;
* win, tie and loss rates over images. A **tie** is an image whose two scores differ by at most the tolerance
  (:data:`TIE_TOLERANCE`: 0.01 dB PSNR, 0.001 SSIM); otherwise the higher score wins. The tolerance is the
  precision of the published numbers, not of the suite's tables (those print more digits): the paper tables in
  ``config/paper/`` give PSNR to 2 decimals and SSIM to 3, so a smaller difference is one the papers would not
  report. The difference is rounded to :data:`DIFF_DECIMALS` decimals before it is compared, so that a
  difference of exactly the tolerance (25.51 - 25.50 dB) is a tie despite floating point. The three rates sum to
  1, and two identical methods tie on every image (tie rate 100%, win rate 0%). The rule is written into every
  row of the summary CSV (``tie_rule``).
* where each side's predictions come from (``a_source``, ``b_source``): the metrics file's ``prediction_source``,
  ``suite`` (``k3dn predict``) or ``external`` (``k3dn import-predictions``); ``suite`` for a file written before
  that column existed. A file that mixes the two is refused.

``k3dn compare`` writes ``<out-dir>/<test>/<A>_vs_<B>.csv`` (the summary), ``..._images.csv`` (per-image scores and
differences, sorted by id) and ``.png`` (per-image PSNR of A against B with the diagonal), each atomically, and prints one line.

The pairwise matrix (:func:`pairwise_matrix`, ``k3dn report pairwise``): every method against every other on one
test set, as a tidy frame (one row per ordered pair, the diagonal included) the HTML report renders. Only pairs
``i < j`` are resampled; ``(j, i)`` is their mirror, which the seeded bootstrap would give anyway (the same
resampled images, both orders pairing the images in id order, and negated differences). A pair with a non-finite
score (a perfect prediction's PSNR is inf) has no interval: its numbers are NaN and ``note`` says why, so one such
method does not stop the report.

Imports here are the standard library only at module level: ``k3dn report``'s parser adds ``pairwise`` from this
module, and building that parser must stay free of pandas and matplotlib (every table job builds it).
"""

from __future__ import annotations

import math
from pathlib import Path

from k3dn.errors import InputError

METRICS = ("psnr", "ssim")
#: |A - B| at or below which an image is a tie, per metric: the precision of the published values in
#: config/paper/ (PSNR to 2 decimals of dB, SSIM to 3), so a tie is a difference the papers would not report.
TIE_TOLERANCE = {"psnr": 0.01, "ssim": 0.001}
#: |A - B| is rounded to this many decimals before it meets the tolerance: far below any metric's precision,
#: far above the float error of a difference of two scores (about 1e-14 at 25 dB), which would otherwise make
#: 25.51 - 25.50 (0.010000000000001563) a win at 0.01 dB.
DIFF_DECIMALS = 9
REQUIRED = ("id", "label", *METRICS, "protocol")
COMBINED = "combined"
OUTCOMES = ("win", "tie", "loss")
SUMMARY_COLUMNS = [
    "test",
    "a",
    "b",
    "group",
    "metric",
    "n_images",
    "mean_a",
    "mean_b",
    "mean_diff",
    "ci95_low",
    "ci95_high",
    "excludes_zero",
    "wins",
    "ties",
    "losses",
    "win_rate",
    "tie_rate",
    "loss_rate",
    "win_rate_ties_half",
    "tie_tolerance",
    "tie_rule",
    "n_boot",
    "seed",
    "protocol",
    "a_source",
    "b_source",
    "file_a",
    "file_b",
]
MATRIX_COLUMNS = [
    "test",
    "a",
    "b",
    "metric",
    "n_images",
    "mean_diff",
    "ci95_low",
    "ci95_high",
    "excludes_zero",
    "win_rate",
    "tie_rate",
    "loss_rate",
    "note",
]


def tie_rule(metric: str, tolerance: float) -> str:
    return f"tie: |{metric}_a - {metric}_b| <= {tolerance:g}; otherwise the higher {metric} wins"


def tolerances(tolerance=None) -> dict:
    """Metric -> tie tolerance: :data:`TIE_TOLERANCE` with ``tolerance`` (metric -> value, may be partial) over it."""
    return {**TIE_TOLERANCE, **(tolerance or {})}


# ----------------------------------------------------------------------------------------------------------
# Reading and pairing
# ----------------------------------------------------------------------------------------------------------


def metrics_file(metrics_root, method: str, test: str) -> Path:
    from k3dn.report.tables import metrics_path

    return metrics_path(metrics_root, method, test)


def read_per_image(path):
    """A per-image metrics file of ``k3dn evaluate``, checked: the columns pairing needs, numeric scores, no
    duplicated id. Returns the frame with ``psnr``/``ssim`` as floats (inf kept: a perfect prediction)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(
            "per-image metrics not found; score the predictions (`k3dn evaluate`), or give the right --metrics-root",
            where=path,
        )
    df = pd.read_csv(path, keep_default_na=False, dtype={"id": str, "label": str, "protocol": str})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"no column(s) {missing}; is this a file `k3dn evaluate` wrote?", where=path)
    if df.empty:
        raise InputError("no images; score at least one", where=path)
    dup = df["id"][df["id"].duplicated()].unique().tolist()
    if dup:
        raise InputError(f"id(s) {dup[:5]} appear more than once; each image must be scored once", where=path)
    for m in METRICS:
        try:
            df[m] = pd.to_numeric(df[m]).astype(float)
        except (ValueError, TypeError) as e:
            raise InputError(f"column {m!r} is not numeric ({e})", where=path) from None
    return df


def prediction_source(df, where) -> str:
    """``suite`` or ``external``: who made the predictions a metrics file scored (its ``prediction_source``; a file
    written before that column existed, or an empty cell, is of the suite's). Refuses a file that mixes sources:
    its images were not all made the same way, so no one source describes it."""
    from k3dn.evaluate import SOURCE

    column = SOURCE[0]
    if column not in df.columns:
        return "suite"
    values = sorted({v or "suite" for v in df[column].astype(str)})
    if len(values) != 1:
        raise InputError(
            f"{column} mixes {values}; score one method's predictions from one source per file", where=where
        )
    return values[0]


def _examples(ids) -> str:
    ids = sorted(ids)
    return ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")


def pair_images(df_a, df_b, where_a="A", where_b="B"):
    """The two methods' scores side by side, one row per image sorted by id (so that the bootstrap of B vs A
    resamples the same images as A vs B, whatever order each file lists them in): ``id, label, protocol,
    <m>_a, <m>_b, <m>_diff`` (diff = A - B) for each metric. Refuses (naming ``where_a``, the file, and ``where_b``)
    files that do not score the same images under the same protocol and labels."""
    only_a = set(df_a["id"]) - set(df_b["id"])
    only_b = set(df_b["id"]) - set(df_a["id"])
    if only_a or only_b:
        parts = [f"{len(only_a)} id(s) only here ({_examples(only_a)})"] if only_a else []
        parts += [f"{len(only_b)} only there ({_examples(only_b)})"] if only_b else []
        raise InputError(
            f"scores a different image set from {where_b}: {'; '.join(parts)}; evaluate both on the same manifest",
            where=where_a,
        )
    cols = ["id", "label", "protocol", *METRICS]
    sha = "data_sha256" in df_a.columns and "data_sha256" in df_b.columns
    both = df_a[cols + (["data_sha256"] if sha else [])].merge(
        df_b[cols + (["data_sha256"] if sha else [])], on="id", suffixes=("_a", "_b"), sort=False
    )
    for key, what in (("protocol", "protocol"), ("label", "label")):
        bad = both[both[f"{key}_a"] != both[f"{key}_b"]]
        if len(bad):
            r = bad.iloc[0]
            raise InputError(
                f"image {r['id']!r} is scored with {what} {r[f'{key}_a']!r} here but {r[f'{key}_b']!r} in "
                f"{where_b} ({len(bad)} image(s) differ); compare files evaluated the same way",
                where=where_a,
            )
    if sha and (both["data_sha256_a"] != both["data_sha256_b"]).any():
        raise InputError(
            f"scored against other target files than {where_b} (data_sha256 differs); evaluate both on the same data",
            where=where_a,
        )
    out = both[["id", "label_a", "protocol_a"]].rename(columns={"label_a": "label", "protocol_a": "protocol"})
    for m in METRICS:
        out[f"{m}_a"], out[f"{m}_b"] = both[f"{m}_a"], both[f"{m}_b"]
        out[f"{m}_diff"] = both[f"{m}_a"] - both[f"{m}_b"]
    return out.sort_values("id", kind="stable").reset_index(drop=True)


def outcome(diff, tolerance: float):
    """``"win"`` / ``"tie"`` / ``"loss"`` of A per image from its difference A - B (see the module docstring)."""
    import numpy as np

    d = np.asarray(diff, dtype=np.float64)
    tie = np.round(np.abs(d), DIFF_DECIMALS) <= tolerance
    return np.where(tie, "tie", np.where(d > 0, "win", "loss"))


def groups_of(pairs) -> list[str]:
    """``combined``, then each non-empty label in sorted order (indoor, outdoor on DPD-blur)."""
    return [COMBINED, *sorted(lab for lab in set(pairs["label"]) if lab)]


def _rates(result) -> dict:
    n = len(result)
    counts = {o: int((result == o).sum()) for o in OUTCOMES}
    return {
        "wins": counts["win"],
        "ties": counts["tie"],
        "losses": counts["loss"],
        "win_rate": counts["win"] / n,
        "tie_rate": counts["tie"] / n,
        "loss_rate": counts["loss"] / n,
        # the share of images on which A is better, a tie counting half: 50% for a method against itself
        "win_rate_ties_half": (counts["win"] + counts["tie"] / 2) / n,
    }


def _refuse_non_finite(df, where) -> None:
    import numpy as np

    for m in METRICS:
        bad = df["id"][~np.isfinite(df[m].to_numpy())].tolist()
        if bad:
            raise InputError(
                f"{len(bad)} image(s) with a non-finite {m} ({_examples(bad)}; a perfect prediction scores inf): "
                "the paired interval needs finite values; leave those images out of the manifest",
                where=where,
            )


def paired_summary(
    pairs, test: str, a: str, b: str, tolerance=None, file_a="", file_b="", source_a="suite", source_b="suite"
):
    """One row per group and metric (:data:`SUMMARY_COLUMNS`): means, the paired interval of the mean difference,
    the win/tie/loss counts and rates under ``tolerance`` (metric -> tie tolerance, default
    :data:`TIE_TOLERANCE`), and where each side's predictions come from (:func:`prediction_source`)."""
    import pandas as pd

    from k3dn.report.stats import N_BOOT, SEED, paired_diff_ci

    tolerance = tolerances(tolerance)
    protocol = "|".join(sorted(set(pairs["protocol"])))
    rows = []
    for g in groups_of(pairs):
        sel = pairs if g == COMBINED else pairs[pairs["label"] == g]
        for m in METRICS:
            ci = paired_diff_ci(sel[f"{m}_a"], sel[f"{m}_b"], name=f"{file_a} vs {file_b} ({g}, {m})")
            rows.append(
                {
                    "test": test,
                    "a": a,
                    "b": b,
                    "group": g,
                    "metric": m,
                    "n_images": len(sel),
                    "mean_a": float(sel[f"{m}_a"].mean()),
                    "mean_b": float(sel[f"{m}_b"].mean()),
                    "mean_diff": ci["mean"],
                    "ci95_low": ci["low"],
                    "ci95_high": ci["high"],
                    "excludes_zero": ci["excludes_zero"],
                    **_rates(outcome(sel[f"{m}_diff"], tolerance[m])),
                    "tie_tolerance": tolerance[m],
                    "tie_rule": tie_rule(m, tolerance[m]),
                    "n_boot": N_BOOT,
                    "seed": SEED,
                    "protocol": protocol,
                    "a_source": source_a,
                    "b_source": source_b,
                    "file_a": str(file_a),
                    "file_b": str(file_b),
                }
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def compare_methods(a: str, b: str, test: str, metrics_root="results/metrics", tolerance=None):
    """``(pairs, summary)`` of methods ``a`` and ``b`` on ``test``: the per-image frame of :func:`pair_images`
    with a ``psnr_outcome`` column (win/tie/loss of A by PSNR), and :func:`paired_summary`. Every refusal happens
    here, before any output."""
    path_a, path_b = metrics_file(metrics_root, a, test), metrics_file(metrics_root, b, test)
    df_a, df_b = read_per_image(path_a), read_per_image(path_b)
    _refuse_non_finite(df_a, path_a)
    _refuse_non_finite(df_b, path_b)
    source_a, source_b = prediction_source(df_a, path_a), prediction_source(df_b, path_b)
    pairs = pair_images(df_a, df_b, path_a, path_b)
    tol = tolerances(tolerance)
    pairs["psnr_outcome"] = outcome(pairs["psnr_diff"], tol["psnr"])
    return pairs, paired_summary(pairs, test, a, b, tol, path_a, path_b, source_a, source_b)


# ----------------------------------------------------------------------------------------------------------
# The scatter plot
# ----------------------------------------------------------------------------------------------------------


def scatter_figure(pairs, a: str, b: str, test: str, headline: dict, out) -> Path:
    """Per-image PSNR of A (y) against B (x), coloured by label, with the diagonal: points above it are A's wins."""
    import matplotlib

    matplotlib.use("Agg")  # before pyplot, as k3dn.report.plotting does
    import matplotlib.pyplot as plt

    from k3dn.report.plotting import save_figure

    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for i, lab in enumerate(sorted(set(pairs["label"]))):
        sel = pairs[pairs["label"] == lab]
        ax.scatter(sel["psnr_b"], sel["psnr_a"], s=14, color=f"C{i}", alpha=0.8, label=lab or "unlabelled", zorder=2)
    lo = float(min(pairs["psnr_a"].min(), pairs["psnr_b"].min()))
    hi = float(max(pairs["psnr_a"].max(), pairs["psnr_b"].max()))
    pad = max(0.5, 0.05 * (hi - lo))
    lims = (lo - pad, hi + pad)
    ax.plot(lims, lims, color="0.4", ls="--", lw=1, zorder=1, label="equal PSNR")
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{b}: PSNR (dB)")
    ax.set_ylabel(f"{a}: PSNR (dB)")
    ax.set_title(
        f"{test}, {headline['n_images']} images: {a} - {b} = {headline['mean_diff']:+.2f} dB\n"
        f"95% CI [{headline['ci95_low']:+.2f}, {headline['ci95_high']:+.2f}]; "
        f"wins {headline['win_rate']:.0%}, ties {headline['tie_rate']:.0%}, losses {headline['loss_rate']:.0%}",
        fontsize=8,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, out)


def headline_row(summary) -> dict:
    """The row a one-line verdict and the plot's title report: PSNR over all images (group ``combined``)."""
    return summary[(summary["group"] == COMBINED) & (summary["metric"] == "psnr")].iloc[0].to_dict()


def output_paths(out_dir, a: str, b: str, test: str) -> dict[str, Path]:
    stem = Path(out_dir) / test / f"{a}_vs_{b}"
    return {
        "summary": stem.with_name(stem.name + ".csv"),
        "images": stem.with_name(stem.name + "_images.csv"),
        "plot": stem.with_name(stem.name + ".png"),
    }


def write_compare(a, b, test, metrics_root="results/metrics", out_dir="results/compare", tolerance=None):
    """Run :func:`compare_methods` and write its summary CSV, per-image CSV and scatter PNG (each atomically).
    Returns ``(paths, summary)``."""
    from k3dn.io import write_csv

    pairs, summary = compare_methods(a, b, test, metrics_root, tolerance)
    paths = output_paths(out_dir, a, b, test)
    images = pairs.assign(a=a, b=b, tie_rule=tie_rule("psnr", tolerances(tolerance)["psnr"]))
    # the plot first: a plot that fails leaves no CSV behind
    scatter_figure(pairs, a, b, test, headline_row(summary), paths["plot"])
    write_csv(summary, paths["summary"])
    write_csv(images, paths["images"])
    return paths, summary


def summary_line(summary, paths) -> str:
    h = headline_row(summary)
    verdict = "resolved" if h["excludes_zero"] else "not resolved"
    return (
        f"{h['a']} vs {h['b']} on {h['test']} ({h['n_images']} images, {h['protocol']}): PSNR {h['mean_diff']:+.3f} dB, "
        f"95% CI [{h['ci95_low']:+.3f}, {h['ci95_high']:+.3f}] ({verdict}); {h['a']} wins {h['win_rate']:.0%}, ties "
        f"{h['tie_rate']:.0%}, loses {h['loss_rate']:.0%} (tie: |PSNR diff| <= {h['tie_tolerance']:g} dB); "
        f"wrote {paths['summary']}, {paths['images']}, {paths['plot']}"
    )


# ----------------------------------------------------------------------------------------------------------
# The pairwise matrix of one test set
# ----------------------------------------------------------------------------------------------------------


def _matrix_cell(pairs, metric: str, tolerance: float, where: str) -> dict:
    import numpy as np

    from k3dn.report.stats import paired_diff_ci

    a, b = pairs[f"{metric}_a"].to_numpy(), pairs[f"{metric}_b"].to_numpy()
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        n = int((~np.isfinite(a) | ~np.isfinite(b)).sum())
        nan = {k: math.nan for k in ("mean_diff", "ci95_low", "ci95_high", "win_rate", "tie_rate", "loss_rate")}
        note = f"{n} image(s) with a non-finite {metric}: no interval"
        return {"n_images": len(pairs), **nan, "excludes_zero": None, "note": note}
    ci = paired_diff_ci(a, b, name=where)
    rates = _rates(outcome(a - b, tolerance))
    return {
        "n_images": len(pairs),
        **{k: rates[k] for k in ("win_rate", "tie_rate", "loss_rate")},
        "mean_diff": ci["mean"],
        "ci95_low": ci["low"],
        "ci95_high": ci["high"],
        "excludes_zero": ci["excludes_zero"],
        "note": "",
    }


def _mirror(cell: dict) -> dict:
    flip = dict(cell)
    flip["mean_diff"], flip["ci95_low"], flip["ci95_high"] = -cell["mean_diff"], -cell["ci95_high"], -cell["ci95_low"]
    flip["win_rate"], flip["loss_rate"] = cell["loss_rate"], cell["win_rate"]
    return flip


def pairwise_matrix(frames: dict, test: str, metric: str = "psnr", tolerance: float | None = None, sources=None):
    """Every method against every other on one test set: one row per ordered pair ``(a, b)`` in the order of
    ``frames`` (method -> per-image frame of :func:`read_per_image`), the diagonal included, with the mean of
    ``metric`` A - B, its paired 95% interval, whether that excludes 0, and the win/tie/loss rates
    (:data:`MATRIX_COLUMNS`). Antisymmetric: the row ``(b, a)`` is the negation of ``(a, b)``. ``sources``
    (method -> file) names the files in a refusal."""
    import pandas as pd

    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; expected one of {list(METRICS)}", where="pairwise matrix")
    tol = TIE_TOLERANCE[metric] if tolerance is None else tolerance
    sources = sources or {}
    names = list(frames)
    cells = {}
    for i, a in enumerate(names):
        for b in names[i:]:
            wa, wb = sources.get(a, a), sources.get(b, b)
            pairs = pair_images(frames[a], frames[b], wa, wb)
            cells[a, b] = _matrix_cell(pairs, metric, tol, f"{wa} vs {wb}")
            if b != a:
                cells[b, a] = _mirror(cells[a, b])
    rows = [{"test": test, "a": a, "b": b, "metric": metric, **cells[a, b]} for a in names for b in names]
    return pd.DataFrame(rows, columns=MATRIX_COLUMNS)


def pairwise_for_test(test: str, methods, metrics_root="results/metrics", metric: str = "psnr", tolerance=None):
    """:func:`pairwise_matrix` of ``methods`` (duplicates dropped) read from ``<metrics_root>/<method>/<test>.csv``."""
    methods = list(dict.fromkeys(methods))
    sources = {m: metrics_file(metrics_root, m, test) for m in methods}
    frames = {m: read_per_image(p) for m, p in sources.items()}
    return pairwise_matrix(frames, test, metric, tolerance, sources)


def matrix_grid(matrix, value: str = "mean_diff"):
    """The tidy matrix as a square frame: rows ``a``, columns ``b``, in the methods' order."""
    order = list(dict.fromkeys(matrix["a"]))
    return matrix.pivot(index="a", columns="b", values=value).reindex(index=order, columns=order)


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------


def _tolerances(args) -> dict:
    for flag, v in (("--tie-psnr", args.tie_psnr), ("--tie-ssim", args.tie_ssim)):
        if not (math.isfinite(v) and v >= 0):
            raise InputError("must be a finite tolerance >= 0", where=f"{flag} {v}")
    return {"psnr": args.tie_psnr, "ssim": args.tie_ssim}


def _cmd_compare(args) -> int:
    paths, summary = write_compare(
        args.a, args.b, args.test, args.metrics_root, args.out_dir, tolerance=_tolerances(args)
    )
    print(summary_line(summary, paths))
    return 0


def _cmd_pairwise(args) -> int:
    from k3dn.io import write_csv

    if args.tie is not None and not (math.isfinite(args.tie) and args.tie >= 0):
        raise InputError("must be a finite tolerance >= 0", where=f"--tie {args.tie}")
    matrix = pairwise_for_test(args.test, args.methods, args.metrics_root, args.metric, args.tie)
    write_csv(matrix, args.out)
    off = matrix[matrix["a"] < matrix["b"]]
    n = len(dict.fromkeys(args.methods))
    resolved = int(off["excludes_zero"].eq(True).sum())
    print(
        f"wrote {args.out}: {n} methods on {args.test}, {resolved} of {len(off)} pairs resolved (95% interval excludes 0)"
    )
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="two methods paired image by image: PSNR/SSIM differences, interval, win rate, scatter plot",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("a", help="method A (its metrics: <metrics-root>/A/<test>.csv); differences are A - B")
    p.add_argument("b", help="method B")
    p.add_argument("--test", required=True, help="test set, the metrics file's stem (e.g. dpdd_test)")
    p.add_argument("--metrics-root", default="results/metrics")
    p.add_argument(
        "--out-dir", default="results/compare", help="writes <out-dir>/<test>/<A>_vs_<B>{.csv,_images.csv,.png}"
    )
    p.add_argument(
        "--tie-psnr", type=float, default=TIE_TOLERANCE["psnr"], help="|PSNR diff| (dB) at or below which a tie"
    )
    p.add_argument("--tie-ssim", type=float, default=TIE_TOLERANCE["ssim"], help="|SSIM diff| at or below which a tie")
    p.set_defaults(func=_cmd_compare)


def add_pairwise_command(report_subparsers) -> None:
    """``k3dn report pairwise``: added to ``k3dn report`` by :mod:`k3dn.report.commands`."""
    w = report_subparsers.add_parser("pairwise", help="every method against every other on one test set (CSV)")
    w.add_argument("--test", required=True, help="test set, the metrics files' stem (e.g. dpdd_test)")
    w.add_argument("--methods", nargs="+", required=True, help="methods with <metrics-root>/<method>/<test>.csv")
    w.add_argument("--metrics-root", default="results/metrics")
    w.add_argument("--metric", choices=METRICS, default="psnr")
    w.add_argument("--tie", type=float, default=None, help="tie tolerance (default: 0.01 dB PSNR, 0.001 SSIM)")
    w.add_argument("--out", required=True, help="the matrix as a tidy CSV, one row per ordered pair")
    w.set_defaults(func=_cmd_pairwise)
