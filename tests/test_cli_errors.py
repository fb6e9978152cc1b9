"""Expected failures of ``k3dn``: one line ``error: <file or key>: ...`` on stderr, a non-zero exit, no output left.

Each case sets up one fault in ``tmp_path`` and runs ``k3dn.cli.main`` in-process; one runs the real console
script to check the exit status and stderr as a user sees them. ``--debug`` brings the traceback back.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from k3dn.checkpoint import save_weights
from k3dn.cli import main
from k3dn.io import ImageError, write_png16
from tests.conftest import load_probe, one_error_line

P = load_probe()
H, W = 16, 24


class _System:
    """Unpickles to ``os.system(cmd)``: a checkpoint that runs code. The loaders must refuse it unexecuted."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


def _png(path: Path, h: int = H, w: int = W, seed: int = 0) -> Path:
    return write_png16(path, np.random.default_rng(seed).random((h, w, 3)))


def _pair(tmp: Path, right_w: int = W) -> dict:
    return {"left": _png(tmp / "left.png"), "right": _png(tmp / "right.png", w=right_w, seed=1)}


def _deblur(tmp: Path, left, right, *extra) -> list[str]:
    return [
        "deblur",
        "--model",
        P.PROBE,
        "--left",
        str(left),
        "--right",
        str(right),
        "--out",
        str(tmp / "out.png"),
        "--device",
        "cpu",
        *extra,
    ]


def _manifest(tmp: Path, right_w: int = W) -> Path:
    from k3dn.data.manifest import write_manifest

    views = _pair(tmp, right_w)
    row = {
        "id": "a",
        "dataset": "synth",
        "split": "test",
        "protocol": "16bit",
        "channels": 3,
        "left": str(views["left"]),
        "right": str(views["right"]),
        "target": str(_png(tmp / "target.png", seed=2)),
    }
    return write_manifest([row], tmp / "test.csv")


def _probe_weights(tmp: Path, **kw) -> Path:
    return save_weights(P.ProbeDP(**kw), tmp / "probe.safetensors")


# --------------------------------------------------------------------------------------------- faults
# Each returns the argv; the command's output is always tmp/"out.png" or tmp/"out" (a folder).


def missing_image(tmp):
    views = _pair(tmp)
    return _deblur(tmp, tmp / "nowhere.png", views["right"])


def truncated_png(tmp):
    views = _pair(tmp)
    data = views["left"].read_bytes()
    views["left"].write_bytes(data[: len(data) // 2])
    return _deblur(tmp, views["left"], views["right"])


def undecodable(tmp):
    views = _pair(tmp)
    views["right"].write_bytes(np.random.default_rng(0).bytes(300))
    return _deblur(tmp, views["left"], views["right"])


def size_mismatch(tmp):
    views = _pair(tmp, right_w=W + 8)
    return _deblur(tmp, views["left"], views["right"])


def predict_truncated(tmp):
    manifest = _manifest(tmp)
    data = (tmp / "right.png").read_bytes()
    (tmp / "right.png").write_bytes(data[: len(data) // 2])
    return ["predict", "--model", P.PROBE, "--manifest", str(manifest), "--out", str(tmp / "out"), "--device", "cpu"]


def predict_size_mismatch(tmp):
    manifest = _manifest(tmp, right_w=W + 8)
    return ["predict", "--model", P.PROBE, "--manifest", str(manifest), "--out", str(tmp / "out"), "--device", "cpu"]


def unknown_model_predict(tmp):
    manifest = _manifest(tmp)
    return ["predict", "--model", "k3dn_tinny", "--manifest", str(manifest), "--out", str(tmp / "out")]


def unknown_model_deblur(tmp):
    views = _pair(tmp)
    return [
        "deblur",
        "--model",
        "k3dn_tinny",
        "--left",
        str(views["left"]),
        "--right",
        str(views["right"]),
        "--out",
        str(tmp / "out.png"),
    ]


def misshaped_weights(tmp):
    views = _pair(tmp)
    return _deblur(tmp, views["left"], views["right"], "--weights", str(_probe_weights(tmp, width=4)))


def weights_of_another_model(tmp):
    views = _pair(tmp)
    weights = save_weights(P.ProbeSingle(), tmp / "single.safetensors")  # no srp / reblur tensors
    return _deblur(tmp, views["left"], views["right"], "--weights", str(weights))


def verify_wrong_file(tmp):
    from baselines.weight_manifests import write_fake_checkpoint

    write_fake_checkpoint("kpac_single_2level_npz", tmp / "single_2level.npz")
    return ["baselines", "verify", "kpac_dual", "--weights", str(tmp / "single_2level.npz")]


def unsafe_pickle(tmp):
    views = _pair(tmp)
    with open(tmp / "evil.pth", "wb") as f:  # protocol 2: torch's own pickles, refused by name not by opcode
        pickle.dump({"w": _System(f"touch {tmp / 'ran'}")}, f, protocol=2)
    return _deblur(tmp, views["left"], views["right"], "--weights", str(tmp / "evil.pth"))


def unsafe_npz(tmp):
    views = _pair(tmp)
    params = np.empty(1, dtype=object)
    params[0] = _System(f"touch {tmp / 'ran'}")
    np.savez(tmp / "evil.npz", params=params)
    return _deblur(tmp, views["left"], views["right"], "--weights", str(tmp / "evil.npz"))


def manual_download(tmp):
    reg = tmp / "checkpoints.yaml"
    reg.write_text(f"""checkpoints:
  handmade:
    model: {P.PROBE}
    manifest: none
    params: 1
    file: handmade.pth
    container: torch.save state dict
    licence: test
    citation: test
    sources:
    - name: form
      role: official
      method: manual
      files:
      - path: handmade.pth
        url: https://example.org/form
        sha256: null
      notes: a web form
""")
    return ["baselines", "fetch", "handmade", "--dest", str(tmp / "out"), "--registry", str(reg)]


def bad_config_key(tmp):
    cfg = tmp / "bad.yaml"
    cfg.write_text("model: {name: train_probe}\noptim: {lrr: 0.1}\n")
    return ["train", "--config", str(cfg), "--out", str(tmp / "out")]


CASES = [
    (missing_image, r"nowhere\.png: image file not found"),
    (truncated_png, r"left\.png: truncated PNG"),
    (undecodable, r"right\.png: cannot decode"),
    (size_mismatch, r"right\.png: the right view is 32x16 \(WxH\) but the left view \S*left\.png is 24x16"),
    (predict_truncated, r"right\.png: truncated PNG"),
    (predict_size_mismatch, r"right\.png: the right image is 32x16 \(WxH\) but the left view \S*left\.png is 24x16"),
    (
        unknown_model_predict,
        (
            r"unknown model 'k3dn_tinny'; did you mean k3dn_tiny\b.*\d+ are registered.*"
            r"`k3dn baselines list`"
        ),
    ),
    (unknown_model_deblur, r"unknown model 'k3dn_tinny'; did you mean k3dn_tiny\b"),
    (
        misshaped_weights,
        (
            r"probe\.safetensors: checkpoint does not match the model: 3 mis-shaped "
            r"\(first body\.0\.weight: model \(8, 6, 3, 3\) vs checkpoint \(4, 6, 3, 3\)\)"
        ),
    ),
    (
        weights_of_another_model,
        (
            r"single\.safetensors: checkpoint does not match the model: 4 missing "
            r"\(first srp\.weight\); .*--verbose"
        ),
    ),
    (verify_wrong_file, r"single_2level\.npz: checkpoint does not match the model"),
    (
        unsafe_pickle,
        (
            r"evil\.pth: refuses to unpickle code \(not a plain tensor checkpoint: it names "
            r"(posix|nt)\.system\); only load files you trust"
        ),
    ),
    (unsafe_npz, r"evil\.npz: refuses to unpickle code .*(posix|nt)\.system"),
    (
        manual_download,
        (
            r"handmade: manual download required: download https://example\.org/form "
            r"and save it as \S*handmade\.pth"
        ),
    ),
    (bad_config_key, r"bad\.yaml: unknown config key 'optim\.lrr'"),
]


@pytest.fixture
def probe_model():
    with P.probe_registered():
        yield


@pytest.mark.parametrize("fault, message", CASES, ids=[c[0].__name__ for c in CASES])
def test_expected_failure_is_one_line_and_leaves_no_output(fault, message, tmp_path, capsys, probe_model):
    argv = fault(tmp_path)
    capsys.readouterr()
    rc = main(argv)
    line = one_error_line(capsys.readouterr().err)
    assert rc != 0
    assert re.search(message, line), line
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out").exists()
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / "ran").exists()


def test_exit_codes(tmp_path, capsys, probe_model):
    """1 for an expected failure, 3 for a file only a person can fetch, 2 for a wrong command line."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(missing_image(tmp_path / "a")) == 1
    assert main(manual_download(tmp_path / "b")) == 3
    with pytest.raises(SystemExit) as e:
        main(["deblur", "--model", P.PROBE])
    assert e.value.code == 2


def test_console_script_prints_one_line(tmp_path):
    views = _pair(tmp_path)
    k3dn = Path(sys.executable).with_name("k3dn")
    out = subprocess.run(
        [
            str(k3dn),
            "deblur",
            "--model",
            "identity",
            "--left",
            str(tmp_path / "nowhere.png"),
            "--right",
            str(views["right"]),
            "--out",
            str(tmp_path / "out.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == f"error: {tmp_path / 'nowhere.png'}: image file not found\n"
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_gives_the_traceback(where, tmp_path, capsys, probe_model):
    argv = missing_image(tmp_path)
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(ImageError, match="nowhere.png: image file not found"):
        main(argv)


def test_verbose_shows_every_tensor_of_a_mismatch(tmp_path, capsys, probe_model):
    rc = main(["-v", *weights_of_another_model(tmp_path)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 1 and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    assert any("missing (4): srp.weight, srp.bias, reblur.weight, reblur.bias" in line for line in err)


def test_log_levels(tmp_path, capsys, monkeypatch):
    """Module loggers reach stderr as '<level>: <message>': INFO by default, DEBUG with -v, warnings with -q."""
    import logging

    from k3dn import infer

    def fake_predict(args):
        log = logging.getLogger("k3dn.infer")
        log.debug("dbg")
        log.info("inf")
        log.warning("wrn")
        print("the output")
        return 0

    monkeypatch.setattr(infer, "_cmd_predict", fake_predict)
    argv = ["predict", "--model", "m", "--manifest", "m.csv", "--out", "o"]
    seen = {}
    for flag in ("-v", None, "-q"):
        assert main([flag, *argv] if flag else argv) == 0
        cap = capsys.readouterr()
        assert cap.out == "the output\n"
        seen[flag] = cap.err.splitlines()
    assert seen["-v"] == ["debug: dbg", "info: inf", "warning: wrn"]
    assert seen[None] == ["info: inf", "warning: wrn"]
    assert seen["-q"] == ["warning: wrn"]
    from k3dn import cli

    assert not [h for h in logging.getLogger().handlers if isinstance(h, cli._Stderr)]  # nothing left installed


def test_predict_checks_inputs_before_touching_old_predictions(tmp_path, capsys, probe_model):
    """A broken input must not cost the previous key's finished images, nor leave a key of the new run."""
    manifest = _manifest(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"older")
    (out / ".key.json").write_text(json.dumps({"model": "older"}))
    (tmp_path / "target.png").unlink()
    assert main(["predict", "--model", P.PROBE, "--manifest", str(manifest), "--out", str(out), "--device", "cpu"]) == 1
    assert re.search(r"target\.png: file not found", one_error_line(capsys.readouterr().err))
    assert (out / "a.png").read_bytes() == b"older" and json.loads((out / ".key.json").read_text()) == {
        "model": "older"
    }
