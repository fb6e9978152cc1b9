"""``k3dn report``: paper tables, their check, speed measurements and figures.

Each handler reads its JSON spec and checks what the spec names (keys, files) before any work, so a wrong
input stops with one ``error:`` line and no output file (:mod:`k3dn.report.specs`, :mod:`k3dn.cli`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from k3dn.errors import InputError
from k3dn.report.specs import FIGURE_NAMES, MODEL_FIGURES, parse_spec, require_keys, require_list

TABLE_HINT = "a table spec has test, groups, metrics and rows [{label, method}] (k3dn.report.tables)"


def _table_inputs(spec, metrics_root, speed_root) -> None:
    """The spec's keys, and every file the table reads, before anything is written."""
    from k3dn.report.tables import metrics_path, speed_path

    speed = isinstance(spec, dict) and spec.get("kind") == "speed"
    require_keys(spec, ["groups", "metrics", "rows"] + ([] if speed else ["test"]), "--spec", TABLE_HINT)
    for key in ("groups", "metrics", "rows"):
        # a spec with no rows still gives its (empty) table, as it always did
        require_list(spec[key], f"--spec: key {key!r}", TABLE_HINT, empty_ok=key == "rows")
    for row in spec["rows"]:
        require_keys(row, ["label"], "--spec: a row of 'rows'", TABLE_HINT)
    published = spec.get("published")
    if published and not Path(published).is_file():
        raise InputError(
            "published table not found; fix the spec's 'published' (relative to the working directory)",
            where=published,
        )
    for row in spec["rows"]:
        method = row.get("method")
        if not method:
            continue
        if speed:
            path, fix = speed_path(speed_root, method), f"measure it (`k3dn report speed --method {method}`)"
            what = f"speed of {method!r}"
        else:
            path, fix = metrics_path(metrics_root, method, spec["test"]), "score its predictions (`k3dn evaluate`)"
            what = f"per-image metrics of {method!r} on {spec['test']}"
        if not path.is_file():
            root = "--speed-root" if speed else "--metrics-root"
            raise InputError(f"{what} not found; {fix}, or give the right {root}", where=path)


def _table(args) -> int:
    from k3dn.report.tables import write_table

    spec = parse_spec(args.spec)
    _table_inputs(spec, args.metrics_root, args.speed_root)
    write_table(spec, args.out, metrics_root=args.metrics_root, speed_root=args.speed_root)
    return 0


def _check(args) -> int:
    from k3dn.report.check import check_tables
    from k3dn.workflow import load_plan

    # The tables as the workflow planned them: the paper grid with any scale merged in, and rows it left out.
    names, problems = check_tables(args.tables_dir, load_plan(args.workflow))
    report = Path(args.report)
    if report.is_file():
        # the page must show every table and every figure the run drew
        html = report.read_text()
        figures = sorted(Path(args.figures_dir).glob("*.png"))
        problems += [f"{report}: table {n} missing" for n in names if f'id="table-{n}"' not in html]
        problems += [f"{report}: figure {f.stem} missing" for f in figures if f'id="figure-{f.stem}"' not in html]
    elif args.require_report:
        problems.append(f"{report}: not found")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"checked {len(names)} tables: {len(problems)} problem(s)")
    return 1 if problems else 0


def _sensitivity(args) -> int:
    from k3dn.evaluate import prediction_record
    from k3dn.report.sensitivity import write_sensitivity

    hint = "each entry is {method, test, pred, manifest, variants: {name: pred_dir}}"
    entries = require_list(parse_spec(args.spec), "--spec", hint)
    for e in entries:
        require_keys(e, ["method", "test", "pred", "manifest"], "--spec: an entry", hint)
        if e.get("variants") is not None and not isinstance(e["variants"], dict):
            raise InputError(
                f"must be a JSON object {{name: pred_dir}}; {hint}", where=f"--spec: {e['method']} variants"
            )
        prediction_record(e["pred"])  # an unfinished prediction is named before any image is scored
    backend = "torch" if args.device != "cpu" else "skimage"
    write_sensitivity(entries, args.out, backend=backend, device=_device(args.device))
    return 0


def _defocus(args) -> int:
    from k3dn.report.defocus import write_defocus_table

    rows = parse_spec(args.rows, "--rows")
    print(f"wrote {write_defocus_table(rows, args.manifest, args.out, device=_device(args.device))}")
    return 0


def _torch_device(name: str):
    from k3dn.infer import pick_device

    try:
        return pick_device(name)
    except RuntimeError:  # torch's message lists every device type it was built to know
        raise InputError("not a device; use auto, cpu, cuda or cuda:N", where=f"--device {name!r}") from None


def _device(name: str) -> str:
    return str(_torch_device(name))


def _html(args) -> int:
    from k3dn.report.html import report_from_spec

    spec = parse_spec(args.spec)
    hint = (
        'the spec is {"tables": {name: csv}, "figures": {name: png}, "note": str} and optionally '
        '"table_specs": {name: table spec}, "pairwise": {test set: csv}'
    )
    require_keys(spec, ["tables", "figures"], "--spec", hint)
    for key in ("tables", "figures"):
        if not isinstance(spec[key], dict):
            raise InputError(f"must be a JSON object {{name: path}}; {hint}", where=f"--spec: key {key!r}")
    out = report_from_spec(spec, args.out)  # with the optional table_specs (titles, test sets) and pairwise
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
    from k3dn.infer import load_model, parse_overrides
    from k3dn.report.speed import write_speed

    device = _torch_device(args.device)
    model = load_model(run=args.run, name=args.model, weights=args.weights, overrides=parse_overrides(args.override))
    write_speed(
        model,
        args.method,
        args.out,
        size=tuple(args.size),
        warmup=args.warmup,
        runs=args.runs,
        device=device,
        dtype=args.dtype,
        compile=args.compile,
    )
    return 0


def _figures(args) -> int:
    from k3dn.report.figures import make_figure

    spec = parse_spec(args.spec)
    if args.name in MODEL_FIGURES:
        _torch_device(args.device)  # a wrong --device before the model is loaded
    print(make_figure(args.name, spec, args.out, device=args.device))
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

    c = sub.add_parser("check", help="every table file of a run against its schema: its rows and finite values")
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

    from k3dn.report.compare import add_pairwise_command  # stdlib-only at import: the parser stays light

    add_pairwise_command(sub)  # every method against every other on one test set

    s = sub.add_parser("speed", help="seconds per image, Table 12 protocol")
    s.add_argument("--method", required=True, help="name written in the output")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="a training run folder")
    which.add_argument("--model", help="a registered model name")
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

    # One figure per call, so that each figure is its own workflow rule.
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
    f.add_argument("name", choices=FIGURE_NAMES)
    f.add_argument("--spec", required=True, help="the figure's spec as JSON (formats below)")
    f.add_argument("--out", required=True, help="the PNG to write")
    f.add_argument("--device", default="auto", help="where the model figures run: auto (CUDA when present), cpu, cuda")
    f.set_defaults(func=_figures)
