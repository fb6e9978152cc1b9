"""``k3dn import-predictions``: result images made elsewhere, checked against a manifest, scored as external."""

from __future__ import annotations

import hashlib
import json
import shutil

import cv2
import numpy as np
import pytest

from k3dn.cli import main
from k3dn.data.manifest import write_manifest
from k3dn.evaluate import EvaluationError, evaluate_predictions, write_results
from k3dn.external import import_predictions
from k3dn.io import read_image, write_png8, write_png16
from k3dn.metrics import image_metrics
from k3dn.report.tables import build_table
from tests.conftest import one_error_line

IDS = ("s0", "s1", "s2")
STATEMENT = "released by the authors with their paper; their code, their weights"


def _write_elsewhere(path, img):
    """A 16-bit PNG as another code base might write it (another compression level than k3dn.io's): a re-encoded
    copy would differ in its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    q = np.rint(np.clip(img, 0, 1) * 65535).astype(np.uint16)[..., ::-1]
    assert cv2.imwrite(str(path), q, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def _set(tmp_path, rng, depth=16):
    """16-bit RGB targets, their manifest, and a folder of outside predictions ``<id>.png`` at ``depth`` bits."""
    data, ext = tmp_path / "data", tmp_path / "theirs"
    write = _write_elsewhere if depth == 16 else write_png8
    rows = []
    for i in IDS:
        tgt = rng.random((12, 16, 3))
        write_png16(data / f"{i}_target.png", tgt)
        write(ext / f"{i}.png", np.clip(tgt + 0.03 * rng.standard_normal(tgt.shape), 0, 1))
        rows.append(
            {
                "id": i,
                "dataset": "dpdd",
                "split": "test",
                "left": str(data / f"{i}_target.png"),
                "right": str(data / f"{i}_target.png"),
                "target": str(data / f"{i}_target.png"),
                "label": "indoor",
                "label_source": "test",
                "protocol": "16bit",
                "channels": 3,
            }
        )
    return ext, write_manifest(rows, tmp_path / "manifests" / "dpdd_test.csv")


def _args(ext, man, out, depth=16):
    return ["import-predictions", "--from", str(ext), "--manifest", str(man), "--out", str(out)] + [
        "--method",
        "theirs",
        "--bit-depth",
        str(depth),
        "--note",
        STATEMENT,
    ]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_import_then_evaluate_carries_external_into_metrics_and_tables(tmp_path, rng, capsys):
    ext, man = _set(tmp_path, rng)
    out = tmp_path / "pred" / "theirs" / "dpdd_test"
    assert main(_args(ext, man, out)) == 0
    assert "imported 3 external predictions of theirs" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json", "s0.png", "s1.png", "s2.png"]
    for i in IDS:  # copied byte for byte, never re-encoded
        assert (out / f"{i}.png").read_bytes() == (ext / f"{i}.png").read_bytes()
    rec = json.loads((out / "predictions.json").read_text())
    assert rec["provenance"] == "external" and rec["method"] == "theirs" and rec["statement"] == STATEMENT
    assert rec["bit_depth"] == 16 and rec["manifest_sha256"] == _sha(man) and rec["images"] == 3
    assert {i: (f["sha256"], f["bit_depth"]) for i, f in rec["files"].items()} == {
        i: (_sha(ext / f"{i}.png"), 16) for i in IDS
    }

    df = evaluate_predictions(out, man, progress=False)
    for r in df.itertuples():  # the scores are the reference metrics of the outside files
        want = image_metrics(read_image(ext / f"{r.id}.png"), read_image(tmp_path / "data" / f"{r.id}_target.png"))
        assert r.psnr == pytest.approx(want["psnr"], abs=1e-9)
    assert set(df["prediction_source"]) == {"external"}
    assert set(df["prediction_note"]) == {f"external predictions (16-bit PNGs): {STATEMENT}"}
    assert set(df["predict_commit"]) == set(df["code_sha256"]) == set(df["weights_sha256"]) == {"external"}

    # A table shows the row as external, beside a row of the suite's own predictions (and one of a metrics file
    # written before imports existed, without the column: the suite's).
    metrics = tmp_path / "metrics"
    write_results(df, metrics / "theirs" / "dpdd_test.csv")
    suite = df.assign(prediction_source="suite", prediction_note="", predict_commit="abc")
    write_results(suite, metrics / "port" / "dpdd_test.csv")
    write_results(suite.drop(columns=["prediction_source", "prediction_note"]), metrics / "old" / "dpdd_test.csv")
    spec = {
        "test": "dpdd_test",
        "groups": ["combined"],
        "metrics": ["psnr"],
        "rows": [
            {"label": "Theirs (released results)", "method": "theirs"},
            {"label": "Theirs (our port)", "method": "port"},
            {"label": "Theirs (old file)", "method": "old"},
        ],
    }
    table = build_table(spec, metrics_root=metrics).set_index("row")
    assert list(table["prediction_source"]) == ["external", "suite", "suite"]
    assert table.loc["Theirs (released results)", "note"] == f"external predictions (16-bit PNGs): {STATEMENT}"
    assert list(table["note"])[1:] == ["", ""]


def test_8bit_files_import_when_claimed_and_say_so(tmp_path, rng):
    ext, man = _set(tmp_path, rng, depth=8)
    out = import_predictions(ext, man, tmp_path / "out", "theirs", 8, STATEMENT)
    assert {f["bit_depth"] for f in json.loads((out / "predictions.json").read_text())["files"].values()} == {8}
    df = evaluate_predictions(out, man, progress=False)
    assert set(df["prediction_note"]) == {f"external predictions (8-bit PNGs): {STATEMENT}"}


def _missing(ext, rng):
    (ext / "s1.png").unlink()
    return ext / "s1.png", "missing"


def _wrong_size(ext, rng):
    write_png16(ext / "s1.png", rng.random((12, 15, 3)))
    return ext / "s1.png", "15x12 (WxH), but its target"


def _eight_bit(ext, rng):
    write_png8(ext / "s1.png", rng.random((12, 16, 3)))
    return ext / "s1.png", "8-bit PNG, but --bit-depth 16 was claimed"


def _stray(ext, rng):
    write_png16(ext / "s3.png", rng.random((12, 16, 3)))
    return ext / "s3.png", "stray file"


def _grey(ext, rng):
    write_png16(ext / "s1.png", rng.random((12, 16)))
    return ext / "s1.png", "1 channel(s), but the manifest scores id 's1' with 3"


def _linked(ext, rng):
    outside = ext.parent / "elsewhere.png"
    (ext / "s1.png").rename(outside)
    (ext / "s1.png").symlink_to(outside)
    return ext / "s1.png", "a symbolic link"


def _widened(ext, rng):
    write_png16(ext / "s1.png", np.round(rng.random((12, 16, 3)) * 255) / 255)  # 8-bit values, as v * 257
    return ext / "s1.png", "16-bit PNG holding 8-bit values"


def _shifted(ext, rng):
    q = np.rint(rng.random((12, 16, 3)) * 255).astype(np.uint16) << 8  # v * 256: not v * 257
    assert cv2.imwrite(str(ext / "s1.png"), q)
    return ext / "s1.png", "8-bit values shifted left by 8 bits"


FAULTS = {
    "missing id": _missing,
    "wrong size": _wrong_size,
    "8-bit": _eight_bit,
    "stray": _stray,
    "grey": _grey,
    "symlink": _linked,
    "8-bit values in 16 bits": _widened,
    "8-bit values shifted into 16 bits": _shifted,
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_is_one_line_naming_the_file_and_nothing_is_written(tmp_path, rng, capsys, fault):
    ext, man = _set(tmp_path, rng)
    path, what = FAULTS[fault](ext, rng)
    before = _tree(tmp_path)
    assert main(_args(ext, man, tmp_path / "out")) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {path}: ") and what in line, line
    assert _tree(tmp_path) == before  # no --out, no predictions.json, no staging folder


def test_every_problem_is_named_on_a_line_of_its_own(tmp_path, rng, capsys):
    ext, man = _set(tmp_path, rng)
    (ext / "s0.png").unlink()
    write_png16(ext / "s1.png", rng.random((12, 15, 3)))
    write_png8(ext / "s2.png", rng.random((12, 16, 3)))
    (ext / "notes.txt").write_text("how we made them")
    assert main(_args(ext, man, tmp_path / "out")) == 1
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        str(ext / n) for n in ("s0.png", "s1.png", "s2.png", "notes.txt")
    ]
    assert all(line.startswith("error: ") for line in lines) and not (tmp_path / "out").exists()


def test_an_interrupted_import_leaves_nothing_half_written(tmp_path, rng, monkeypatch):
    import k3dn.external

    ext, man = _set(tmp_path, rng)
    copies = []

    def copy_then_stop(src, dst):
        if copies:
            raise KeyboardInterrupt
        copies.append(src)
        return real(src, dst)

    real = k3dn.external.shutil.copyfile
    monkeypatch.setattr(k3dn.external.shutil, "copyfile", copy_then_stop)
    before = _tree(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        import_predictions(ext, man, tmp_path / "out", "theirs", 16, STATEMENT)
    assert copies and _tree(tmp_path) == before

    # Over an earlier import, one interrupted as it swaps in (the earlier one moved aside) keeps the earlier whole.
    monkeypatch.setattr(k3dn.external.shutil, "copyfile", real)
    out = import_predictions(ext, man, tmp_path / "out", "theirs", 16, STATEMENT)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    write_png16(ext / "s0.png", rng.random((12, 16, 3)))
    real_replace = k3dn.external.os.replace

    def stop_swapping_in(src, dst):
        if str(src).endswith(".import.tmp"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(k3dn.external.os, "replace", stop_swapping_in)
    with pytest.raises(KeyboardInterrupt):
        import_predictions(ext, man, out, "theirs", 16, "a second try")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "manifests", "out", "theirs"]


def test_a_reimport_replaces_an_import_but_never_a_suite_prediction(tmp_path, rng):
    ext, man = _set(tmp_path, rng)
    out = import_predictions(ext, man, tmp_path / "out", "theirs", 16, STATEMENT)
    import_predictions(ext, man, out, "theirs", 16, "second statement")
    assert json.loads((out / "predictions.json").read_text())["statement"] == "second statement"
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "predictions.json").write_text(json.dumps({"config_hash": "c", "device": "cpu", "dtype": "float32"}))
    with pytest.raises(ValueError, match="is not an earlier import"):
        import_predictions(ext, man, suite, "theirs", 16, STATEMENT)
    assert sorted(p.name for p in suite.iterdir()) == ["predictions.json"]


def test_evaluate_refuses_an_imported_file_replaced_since(tmp_path, rng):
    ext, man = _set(tmp_path, rng)
    out = import_predictions(ext, man, tmp_path / "out", "theirs", 16, STATEMENT)
    write_png16(out / "s2.png", rng.random((12, 16, 3)))
    with pytest.raises(EvaluationError, match=r"s2\.png: changed since it was imported"):
        evaluate_predictions(out, man, progress=False)


def test_evaluate_refuses_an_import_checked_against_another_manifest(tmp_path, rng):
    ext, man = _set(tmp_path, rng)
    out = import_predictions(ext, man, tmp_path / "out", "theirs", 16, STATEMENT)
    other = man.with_name("other.csv")
    other.write_text(man.read_text() + "\n")  # the same rows, not the same file
    with pytest.raises(EvaluationError, match=r"predictions\.json: imported against another manifest than"):
        evaluate_predictions(out, other, progress=False)


def test_the_workflow_replaces_its_earlier_import_but_never_anything_else(tmp_path, rng, capsys):
    """Snakemake deletes a job's ``predictions.json`` before running it, so the workflow's re-import finds an
    earlier import's images unmarked: ``--replace`` replaces a folder of nothing but the test set's ``<id>.png``
    files, whoever wrote them. A folder with a ``predictions.json`` of ``k3dn predict``, one with its resume key
    (an unfinished run), one with anything else in it, and a folder the source lies in are refused, and left as
    they were."""
    ext, man = _set(tmp_path, rng)
    out = import_predictions(ext, man, tmp_path / "out", "theirs", 16, STATEMENT)
    (out / "predictions.json").unlink()
    (out / "s0.png").write_bytes(b"an earlier release")
    with pytest.raises(ValueError, match="is not an earlier import"):
        import_predictions(ext, man, out, "theirs", 16, STATEMENT)
    assert main(_args(ext, man, out) + ["--replace"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json", "s0.png", "s1.png", "s2.png"]
    assert (out / "s0.png").read_bytes() == (ext / "s0.png").read_bytes()
    assert json.loads((out / "predictions.json").read_text())["provenance"] == "external"

    suite = tmp_path / "suite"  # finished by `k3dn predict`
    suite.mkdir()
    (suite / "predictions.json").write_text(json.dumps({"config_hash": "c", "device": "cpu", "dtype": "float32"}))
    unmarked = tmp_path / "unmarked"  # an unfinished `k3dn predict` run: its resume key beside the images
    unmarked.mkdir()
    (unmarked / "s0.png").write_bytes(b"")
    (unmarked / ".key.json").write_text("{}")
    parent = tmp_path / "predictions"  # a predict folder one level down
    (parent / "pub_dpdnet_dual" / "dpdd_test").mkdir(parents=True)
    for folder in (suite, unmarked, parent):
        before = _tree(folder)
        capsys.readouterr()
        assert main(_args(ext, man, folder) + ["--replace"]) != 0
        assert one_error_line(capsys.readouterr().err).startswith(f"error: {folder}: exists and is not an earlier")
        assert _tree(folder) == before

    inside = out / "release"  # the release unpacked into the earlier import: replacing it would delete the source
    shutil.copytree(ext, inside)
    with pytest.raises(ValueError, match="one inside the other"):
        import_predictions(inside, man, out, "theirs", 16, STATEMENT)
    assert sorted(p.name for p in inside.iterdir()) == ["s0.png", "s1.png", "s2.png"]


def test_an_all_black_or_black_and_white_image_is_exact_in_either_bit_depth(tmp_path, rng):
    ext, man = _set(tmp_path, rng)  # 16-bit
    write_png16(ext / "s0.png", np.zeros((12, 16, 3)))
    write_png16(ext / "s1.png", rng.random((12, 16, 3)) > 0.5)
    out = import_predictions(ext, man, tmp_path / "out", "theirs", 16, STATEMENT)
    assert {f["bit_depth"] for f in json.loads((out / "predictions.json").read_text())["files"].values()} == {16}


def test_8bit_values_widened_into_16bit_files_import_as_8bit(tmp_path, rng):
    """``v * 257`` in a 16-bit file is read as ``v / 255``, exactly what the 8-bit file scores: importable when
    8 bits are claimed, and recorded as such."""
    ext, man = _set(tmp_path, rng, depth=8)
    wide = tmp_path / "wide"
    for i in IDS:
        wide.mkdir(exist_ok=True)
        assert cv2.imwrite(str(wide / f"{i}.png"), cv2.imread(str(ext / f"{i}.png")).astype(np.uint16) * 257)
    a = import_predictions(ext, man, tmp_path / "a", "theirs", 8, STATEMENT)
    b = import_predictions(wide, man, tmp_path / "b", "theirs", 8, STATEMENT)
    files = json.loads((b / "predictions.json").read_text())["files"]
    assert {(f["bit_depth"], f["png_bit_depth"]) for f in files.values()} == {(8, 16)}
    scores = [evaluate_predictions(d, man, progress=False).set_index("id")["psnr"] for d in (a, b)]
    assert scores[0].to_dict() == pytest.approx(scores[1].to_dict(), abs=1e-9)


def test_an_8bit_release_of_predictions_scores_what_the_sensitivity_tables_8bit_pred_row_says(tmp_path, rng):
    """The two routes to an 8-bit cap agree: a method's 16-bit predictions written as 8-bit PNGs (as a paper
    releases them), imported and evaluated, score per image what ``8bit-pred`` computes from the 16-bit files."""
    from k3dn.report.sensitivity import protocols_for, score, sensitivity_table

    ext, man = _set(tmp_path, rng)  # 16-bit predictions
    release = tmp_path / "release"
    for i in IDS:
        write_png8(release / f"{i}.png", read_image(ext / f"{i}.png"))
    out = import_predictions(release, man, tmp_path / "out", "theirs", 8, STATEMENT)
    imported = evaluate_predictions(out, man, progress=False).set_index("id")["psnr"]
    reading, transform, pred_transform = protocols_for("dpdd_test", man)["8bit-pred"]
    capped = score(ext, man, reading, transform, pred_transform=pred_transform).set_index("id")["psnr"]
    assert imported.to_dict() == pytest.approx(capped.to_dict(), abs=1e-6)
    full = score(ext, man, reading).set_index("id")["psnr"]
    assert (abs(imported - full) > 1e-3).all()  # the 8-bit files do score differently from the 16-bit ones
    # in the sensitivity table the import is marked as such, and rounding 8-bit files to 8 bits changes nothing
    entry = {"method": "theirs", "test": "dpdd_test", "pred": str(out), "manifest": str(man), "variants": {}}
    sens = sensitivity_table([entry]).set_index("protocol")
    assert set(sens["weights_sha256"]) == set(sens["dtype"]) == set(sens["prediction_source"]) == {"external"}
    assert sens.loc["8bit-pred", "psnr"] == pytest.approx(sens.loc["16bit", "psnr"], abs=1e-6)
    assert sens.loc["16bit", "psnr"] == pytest.approx(imported.mean(), abs=1e-6)
