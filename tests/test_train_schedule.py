"""The warmup + cosine-restart schedule's known values (cycle 200, warmup 100, 6e-5 .. 3e-4)."""

import math

import pytest
import torch

from k3dn.train.schedule import WarmupCosineRestarts, lr_at

MAX, MIN = 3e-4, 6e-5


@pytest.mark.parametrize(
    "step, want",
    [
        (0, MIN),
        (50, (MIN + MAX) / 2),
        (100, MAX),
        (150, (MIN + MAX) / 2),
        (175, MIN + (MAX - MIN) * 0.5 * (1 + math.cos(math.pi * 0.75))),
        (200, MIN),
        (300, MAX),
        (9800, MIN),
        (9900, MAX),
        (19999, MIN + (MAX - MIN) * 0.5 * (1 + math.cos(math.pi * 0.99))),
    ],
)
def test_known_values(step, want):
    assert lr_at(step) == pytest.approx(want, rel=1e-12)


def test_warmup_is_linear_and_decay_monotone():
    up = [lr_at(s) for s in range(0, 101)]
    assert all(b - a == pytest.approx((MAX - MIN) / 100) for a, b in zip(up, up[1:]))
    down = [lr_at(s) for s in range(100, 200)]
    assert all(b < a for a, b in zip(down, down[1:]))
    assert min(lr_at(s) for s in range(1000)) >= MIN and max(lr_at(s) for s in range(1000)) <= MAX


def test_scheduler_drives_the_optimizer_and_resumes_from_state():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=MAX)
    s = WarmupCosineRestarts(opt, MAX, MIN, 200, 100)
    assert opt.param_groups[0]["lr"] == pytest.approx(MIN)
    for _ in range(137):
        s.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(137))
    opt2 = torch.optim.AdamW([p], lr=MAX)
    s2 = WarmupCosineRestarts(opt2, MAX, MIN, 200, 100)
    s2.load_state_dict(s.state_dict())
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_bad_schedule_is_rejected():
    with pytest.raises(ValueError):
        lr_at(0, cycle=100, warmup=100)
