"""Time the synthetic DP renderer: one full-resolution DPDD-size frame and a CI-size data set."""

import tempfile
import time

from k3dn.synth.dataset import SynthConfig, draw_sample, render_sample, write_synth_dataset


def main() -> None:
    cfg = SynthConfig(size=(1120, 1680))
    for i in range(2):
        scene, coc, info = draw_sample(cfg, "train", i)
        t = time.perf_counter()
        render_sample(cfg, scene, coc)
        print(
            f"1120x1680 render ({info['source']}, {info['layout']}, CoC {info['coc_min']}..{info['coc_max']} px, "
            f"{cfg.n_layers} layers): {time.perf_counter() - t:.2f} s"
        )
    ci = SynthConfig(size=(64, 64), count_train=8, count_val=2, count_test=4, max_coc_px=8)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        write_synth_dataset(d, ci, progress=False)
        print(f"CI set (14 images 64x64, written): {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
