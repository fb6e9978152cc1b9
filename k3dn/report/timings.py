"""Where a workflow run spent its time: Snakemake's per-job ``benchmark:`` files summed per rule.

Every rule writes ``benchmarks/<rule folder>/<wildcards>.tsv`` (Snakemake's benchmark format: a header row
with ``s`` for wall seconds and ``max_rss`` in MB). CI prints this after the miniature run, so the stage that
grows is visible before the 90-minute limit is.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from k3dn.errors import InputError


def read_benchmarks(root="benchmarks") -> pd.DataFrame:
    """One row per job: ``stage`` (the first folder under ``root``, or the file's stem), ``job``, ``seconds``,
    ``max_rss_mb``."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("benchmarks folder not found; run the workflow first, or give --benchmarks", where=root)
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        rel = path.relative_to(root)
        try:
            df = pd.read_csv(path, sep="\t")
            seconds, rss = float(df["s"].iloc[-1]), pd.to_numeric(df["max_rss"], errors="coerce").iloc[-1]
        except (ValueError, KeyError, IndexError, pd.errors.ParserError) as e:
            reason = f"no column {e}" if isinstance(e, KeyError) else str(e)
            raise InputError(
                f"not a Snakemake benchmark file ({reason}); delete it and rerun its rule", where=path
            ) from e
        rows.append(
            {
                "stage": rel.parts[0] if len(rel.parts) > 1 else rel.stem,
                "job": str(rel.with_suffix("")),
                "seconds": seconds,
                "max_rss_mb": float(rss),
            }
        )
    if not rows:
        raise InputError("no benchmark files (*.tsv); run the workflow first", where=root)
    return pd.DataFrame(rows)


def stage_summary(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per stage: jobs, summed and longest wall seconds, the longest job and the peak memory; slowest first."""
    g = jobs.groupby("stage")
    out = pd.DataFrame(
        {
            "jobs": g.size(),
            "total_s": g["seconds"].sum(),
            "max_s": g["seconds"].max(),
            "slowest": jobs.loc[g["seconds"].idxmax(), ["stage", "job"]].set_index("stage")["job"],
            "max_rss_mb": g["max_rss_mb"].max(),
        }
    )
    return out.sort_values("total_s", ascending=False)
