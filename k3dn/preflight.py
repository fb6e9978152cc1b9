"""``k3dn preflight``: the first job of the workflow. Before any work, check the config and every input.

* Config: the device can be used; every run's training crop fits its model's size multiple (or is rounded up to
  it, ``data.crop_fit: up``) and its training set's images. A problem stops here with one line naming the
  run, the key and the fix, instead of hours into a GPU run.
* Inputs: a data set or checkpoint that is in place, or that a program can fetch (HTTP, Google Drive), passes.
  One that only a person can fetch (sync.com share links, web forms) and is not in place is listed with where
  to download it and exactly where to put it. The workflow has already left out what needs it (its table rows
  say ``not run``); with ``--require-all`` preflight stops instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from k3dn.manual_inputs import manual_blockers


def preflight(
    datasets,
    checkpoints,
    raw_root="resources/raw",
    ckpt_root="resources/checkpoints",
    datasets_registry=None,
    checkpoints_registry=None,
) -> list[str]:
    """One message per manual-only input that is not in place."""
    problems = []
    items = [("dataset", d, Path(raw_root) / d, datasets_registry) for d in datasets]
    items += [("checkpoint", c, Path(ckpt_root) / c, checkpoints_registry) for c in checkpoints]
    for kind, name, dest, reg in items:
        for it in manual_blockers(kind, name, dest, reg):
            problems.append(
                f"{name}: download {it.url or '(see notes)'}\n    and save it as {it.path}"
                + (f"\n    sha256 {it.sha256}" if it.sha256 else "")
                + (f"\n    note: {it.note}" if it.note else "")
            )
    return problems


def check_device(name: str) -> list[str]:
    import torch

    try:
        dev = torch.device(
            "cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name
        )
    except RuntimeError as e:
        return [f"config: device: {name!r} is not a device ({e}); use auto, cpu or cuda"]
    if dev.type == "cuda" and not torch.cuda.is_available():
        return [f"config: device: {name!r} asks for CUDA, but no CUDA device is visible; use device: auto or cpu"]
    return []


def check_runs(runs: list[dict]) -> list[str]:
    """Each run's crop against its model's size multiple and its training images (see :meth:`Plan.preflight_checks`)."""
    import torch

    from k3dn.data.datasets import fit_crop
    from k3dn.registry import create_model

    problems, multiples = [], {}
    for r in runs:
        key = (r["model"], json.dumps(r["overrides"], sort_keys=True))
        if key not in multiples:
            with torch.device("meta"):
                m = create_model(r["model"], **r["overrides"])
            multiples[key] = tuple(getattr(m, "size_multiple", (1, 1))), tuple(getattr(m, "min_size", (1, 1)))
        mult, low = multiples[key]
        crop = tuple(int(c) for c in r["crop"])
        where = f"runs.{r['run']}.set.data.crop" if r["set_by_run"] else f"data.crop of {r['recipe']} (run {r['run']})"
        if r["crop_fit"] == "up":
            crop = fit_crop(crop, mult, low)
        elif crop[0] % mult[0] or crop[1] % mult[1] or crop[0] < low[0] or crop[1] < low[1]:
            fix = fit_crop(crop, mult, low)
            problems.append(
                f"config: {where}: crop {crop[0]}x{crop[1]} is not a multiple of {r['model']}'s size "
                f"multiple {mult[0]}x{mult[1]} of at least {low[0]}x{low[1]}; set "
                f"runs.{r['run']}.set.data.crop to e.g. [{fix[0]}, {fix[1]}]"
            )
            continue
        size = r.get("image_size")
        if size and (crop[0] > size[0] or crop[1] > size[1]):
            fit = (size[0] // mult[0] * mult[0], size[1] // mult[1] * mult[1])
            hint = (
                f"set runs.{r['run']}.set.data.crop to e.g. [{fit[0]}, {min(fit[1], crop[1])}]"
                if min(fit) > 0
                else f"the model needs at least {mult[0]}x{mult[1]}; train it on larger images"
            )
            problems.append(
                f"config: {where}: crop {crop[0]}x{crop[1]} does not fit {r['data']}'s "
                f"{size[0]}x{size[1]} images; {hint}"
            )
    return problems


def run_preflight(config: dict) -> tuple[list[str], list[str]]:
    """``(errors, notes)`` for a merged workflow config (see the module docstring)."""
    from k3dn.workflow import Plan, WorkflowConfigError, checkpoint_entries

    try:
        plan = Plan(config, checkpoint_entries())
        checks, manifests = plan.preflight_checks(), plan.manifest_problems()
    except WorkflowConfigError as e:
        return [str(e)], []
    errors = check_device(config["device"]) + manifests + check_runs(checks)
    mini = config.get("miniature")
    regs = (f"{mini['root']}/datasets.yaml", f"{mini['root']}/checkpoints.yaml") if mini else (None, None)
    missing = preflight(plan.downloads(), plan.needed_checkpoints(), plan.raw_root, plan.ckpt_root, *regs)
    notes = []
    if missing and config.get("require_all"):
        errors.append(
            "these inputs can only be fetched by hand; put them in place and run again (or drop "
            "require_all to run what can run):\n  - " + "\n  - ".join(missing)
        )
    elif plan.missing:
        notes.append(plan.report())
    notes.append(
        f"config checked: {len(plan.runs)} run(s), {len(plan.published)} published method(s); "
        f"{len(plan.downloads())} data set(s) and {len(plan.needed_checkpoints())} checkpoint(s) can be had"
    )
    return errors, notes


def _run(args) -> int:
    try:
        config = json.loads(Path(args.workflow).read_text())
    except (OSError, ValueError) as e:
        print(f"error: {args.workflow}: cannot read the workflow config ({e})", file=sys.stderr)
        return 1
    errors, notes = run_preflight(config)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        return 1
    for n in notes:
        print(n)
    return 0


def _config_text(config: dict) -> str:
    return json.dumps(config, indent=1, sort_keys=True, default=str)


def write_workflow_config(config: dict, path) -> bool:
    """Write the merged workflow config as JSON (the workflow's ``onstart``); True if it changed."""
    path, text = Path(path), _config_text(config)
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def recheck(config: dict, workflow_json, done) -> None:
    """At the start of a run: a config that changed since preflight last passed is checked again, before any
    job, and recorded only once it passes. The preflight job itself runs only when its output is missing (a
    first run): downstream jobs would all rerun after it."""
    path = Path(workflow_json)
    changed = not path.is_file() or path.read_text() != _config_text(config)
    if changed and Path(done).is_file():
        errors, _ = run_preflight(config)
        if errors:
            raise SystemExit(
                "preflight: the changed config does not pass:\n" + "\n".join(f"error: {e}" for e in errors)
            )
    write_workflow_config(config, path)


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("preflight", help="check the config and that every input can be had, before any work")
    p.add_argument("--workflow", required=True, help="the merged workflow config as JSON (written by the Snakefile)")
    p.set_defaults(func=_run)
