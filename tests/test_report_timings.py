"""Per-stage job time from Snakemake benchmark files."""

import pytest

from k3dn.report.timings import read_benchmarks, stage_summary

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path, seconds, rss="12.5"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t1\n")


def test_stages_sum_their_jobs_and_name_the_slowest(tmp_path):
    _bench(tmp_path / "train" / "a.tsv", 3.0)
    _bench(tmp_path / "train" / "b.tsv", 5.5, rss="100")
    _bench(tmp_path / "predict" / "a" / "t.tsv", 1.0)
    _bench(tmp_path / "preflight.tsv", 0.5, rss="-")  # Snakemake writes '-' where it could not measure
    s = stage_summary(read_benchmarks(tmp_path))
    assert list(s.index) == ["train", "predict", "preflight"]
    assert s.loc["train", "jobs"] == 2 and s.loc["train", "total_s"] == 8.5 and s.loc["train", "max_s"] == 5.5
    assert s.loc["train", "slowest"] == "train/b" and s.loc["train", "max_rss_mb"] == 100


def test_bad_or_absent_benchmarks_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="no benchmark files"):
        read_benchmarks(tmp_path)
    (tmp_path / "x.tsv").write_text("not\ta benchmark\n1\t2\n")
    with pytest.raises(ValueError, match="x.tsv: not a Snakemake benchmark file"):
        read_benchmarks(tmp_path)
