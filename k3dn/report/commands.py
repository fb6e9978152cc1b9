"""``k3dn report``: paper tables, their check, speed measurements and figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _spec(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--spec is not valid JSON: {e}") from None


def _table(args) -> int:
    from k3dn.report.tables import write_table

    write_table(_spec(args.spec), args.out, metrics_root=args.metrics_root, speed_root=args.speed_root)
    return 0


def _check(args) -> int:
    from k3dn.report.tables import check_table
    from k3dn.workflow import load_plan

    # The tables as the workflow planned them: the paper grid with any scale merged in, and rows it left out.
    specs = load_plan(args.workflow).tables
    problems = [p for name, spec in specs.items() for p in check_table(f"{args.tables_dir}/{name}.csv", spec)]
    report = Path(args.report)
    if report.is_file():
        # the page must show every table and every figure the run drew
        html = report.read_text()
        figures = sorted(Path(args.figures_dir).glob("*.png"))
        problems += [f"{report}: table {n} missing" for n in specs if f'id="table-{n}"' not in html]
        problems += [f"{report}: figure {f.stem} missing" for f in figures if f'id="figure-{f.stem}"' not in html]
    elif args.require_report:
        problems.append(f"{report}: not found")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"checked {len(specs)} tables: {len(problems)} problem(s)")
    return 1 if problems else 0


def _sensitivity(args) -> int:
    from k3dn.report.sensitivity import write_sensitivity

    backend = "torch" if args.device != "cpu" else "skimage"
    write_sensitivity(_spec(args.spec), args.out, backend=backend, device=_device(args.device))
    return 0


def _defocus(args) -> int:
    from k3dn.report.defocus import write_defocus_table

    print(f"wrote {write_defocus_table(_spec(args.rows), args.manifest, args.out, device=_device(args.device))}")
    return 0


def _device(name: str) -> str:
    from k3dn.infer import pick_device

    return str(pick_device(name))


def _html(args) -> int:
    from k3dn.report.html import build_report

    spec = _spec(args.spec)
    out = build_report(spec["tables"], spec["figures"], args.out, note=spec.get("note", ""))
    print(f"wrote {out}")
    return 0


def _timings(args) -> int:
    from k3dn.report.timings import read_benchmarks, stage_summary

    jobs = read_benchmarks(args.benchmarks)
    with __import__("pandas").option_context("display.width", 160, "display.max_colwidth", 60):
        print(stage_summary(jobs).round(1).to_string())
    print(f"{len(jobs)} jobs, {jobs['seconds'].sum():.0f} s of job time")
    return 0


def _speed(args) -> int:
    from k3dn.infer import load_model, parse_overrides, pick_device
    from k3dn.report.speed import write_speed

    model = load_model(run=args.run, name=args.model, weights=args.weights, overrides=parse_overrides(args.override))
    write_speed(
        model,
        args.method,
        args.out,
        size=tuple(args.size),
        warmup=args.warmup,
        runs=args.runs,
        device=pick_device(args.device),
        dtype=args.dtype,
        compile=args.compile,
    )
    return 0


def _figures(args) -> int:
    from k3dn.report.figures import make_figure

    print(make_figure(args.name, _spec(args.spec), args.out, device=args.device))
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("report", help="paper tables, speed and figures")
    sub = p.add_subparsers(dest="report_command", required=True)

    t = sub.add_parser("table", help="build one paper table from per-image metrics")
    t.add_argument("--spec", required=True, help="the table spec as JSON (see k3dn.report.tables)")
    t.add_argument("--out", required=True)
    t.add_argument("--metrics-root", default="results/metrics")
    t.add_argument("--speed-root", default="results/speed")
    t.set_defaults(func=_table)

    c = sub.add_parser("check", help="every table of a workflow config has its rows and finite values")
    c.add_argument(
        "--workflow",
        default="resources/workflow.json",
        help="the merged workflow config the run wrote (resources/workflow.json)",
    )
    c.add_argument("--tables-dir", default="results/tables")
    c.add_argument("--figures-dir", default="results/figures")
    c.add_argument("--report", default="results/report.html")
    c.add_argument("--require-report", action="store_true", help="a missing report is a problem")
    c.set_defaults(func=_check)

    v = sub.add_parser("sensitivity", help="every prediction re-scored under each protocol that applies")
    v.add_argument("--spec", required=True, help="JSON list of {method, test, pred, manifest, variants}")
    v.add_argument("--device", default="auto", help="metrics on the GPU (torch backend) unless cpu")
    v.add_argument("--out", required=True)
    v.set_defaults(func=_sensitivity)

    h = sub.add_parser("html", help="one self-contained HTML page of every table and figure")
    h.add_argument("--spec", required=True, help='JSON: {"tables": {name: csv}, "figures": {name: png}, "note": str}')
    h.add_argument("--out", default="results/report.html")
    h.set_defaults(func=_html)

    d = sub.add_parser("defocus", help="defocus maps against the Pixel ground truth (Table 7b)")
    d.add_argument("--rows", required=True, help="JSON list of {label, kind: maps|k3dn|constant, pred|run}")
    d.add_argument("--manifest", required=True)
    d.add_argument("--device", default="auto")
    d.add_argument("--out", required=True)
    d.set_defaults(func=_defocus)

    b = sub.add_parser("timings", help="job time per workflow stage, from the rules' benchmark files")
    b.add_argument("--benchmarks", default="benchmarks")
    b.set_defaults(func=_timings)

    s = sub.add_parser("speed", help="seconds per image, Table 12 protocol")
    s.add_argument("--method", required=True, help="name written in the output")
    s.add_argument("--run", help="a training run folder")
    s.add_argument("--model", help="a registered model name")
    s.add_argument("--weights")
    s.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--size", type=int, nargs=2, default=[1120, 1680], metavar=("H", "W"))
    s.add_argument("--warmup", type=int, default=5)
    s.add_argument("--runs", type=int, default=30)
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    s.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    s.add_argument("--compile", action="store_true", help="torch.compile the forward (recorded in the row)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_speed)

    import argparse  # only for the spec formats' layout in --help

    # One figure per call, so that each figure is its own workflow rule. The names are k3dn.report.figures'
    # FIGURE_NAMES, spelled out so that building the parser does not import matplotlib.
    f = sub.add_parser(
        "figure",
        help="one figure (PNG) from a JSON spec",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="spec formats (JSON objects):\n"
        '  ablations           {"tables": {title: table_csv}}\n'
        '  speed_accuracy      {"accuracy": table_csv, "speed": speed_table_csv}\n'
        '  qualitative         {"manifest": csv, "predictions": {method: pred_dir}, "metrics": {method: '
        "per_image_csv},\n"
        '                       "reference": method, "blurry": method, "crop": 128}\n'
        '  reblur              {"run": run_dir, "manifest": csv, "n": 2}\n'
        '  psf_kernels         {"run": run_dir, "manifest": csv, "regions": 4}\n'
        '  disparity_clusters  {"runs": [{"run": run_dir, "manifest": csv, "title": str}], "k": 4, '
        '"seed": 0, "csv": out_csv}\n'
        '  dpd_disp            {"manifest": csv, "predictions": {method: pred_dir}, "n": 2}',
    )
    f.add_argument(
        "name",
        choices=(
            "ablations",
            "speed_accuracy",
            "qualitative",
            "reblur",
            "psf_kernels",
            "disparity_clusters",
            "dpd_disp",
        ),
    )
    f.add_argument("--spec", required=True, help="the figure's spec as JSON (formats below)")
    f.add_argument("--out", required=True, help="the PNG to write")
    f.add_argument("--device", default="auto", help="where the model figures run: auto (CUDA when present), cpu, cuda")
    f.set_defaults(func=_figures)
