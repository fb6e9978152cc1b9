"""The supplement's 'cosine annealing with warmups' learning-rate schedule (cycle 200, warmup 100, min 6e-5).

Read as the widely used ``CosineAnnealingWarmupRestarts(first_cycle_steps=200, warmup_steps=100,
max_lr=3e-4, min_lr=6e-5)`` with no cycle growth and no max-lr decay: within every cycle the rate rises
linearly from ``min_lr`` to ``max_lr`` over ``warmup`` steps, then follows half a cosine back down to
``min_lr`` at the end of the cycle, and the next cycle restarts the warmup. A step is one iteration (the
supplement counts training in iterations, 9.8k + 10.2k; the schedule's unit is not stated).

The rate is a pure function of the step index, so resuming needs only the step count (no hidden state).
"""

from __future__ import annotations

import math


def lr_at(step: int, max_lr: float = 3e-4, min_lr: float = 6e-5, cycle: int = 200, warmup: int = 100) -> float:
    if not 0 <= warmup < cycle:
        raise ValueError(f"need 0 <= warmup ({warmup}) < cycle ({cycle})")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    p = step % cycle
    if p < warmup:
        return min_lr + (max_lr - min_lr) * p / warmup
    t = (p - warmup) / (cycle - warmup)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


class WarmupCosineRestarts:
    """Sets ``lr`` on every param group of ``optimizer`` from :func:`lr_at`; ``step()`` advances by one."""

    def __init__(self, optimizer, max_lr: float, min_lr: float, cycle: int, warmup: int, step: int = 0):
        self.optimizer, self.max_lr, self.min_lr, self.cycle, self.warmup = optimizer, max_lr, min_lr, cycle, warmup
        self.last_step = step
        self._apply()

    def get_lr(self) -> float:
        return lr_at(self.last_step, self.max_lr, self.min_lr, self.cycle, self.warmup)

    def _apply(self) -> None:
        lr = self.get_lr()
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def state_dict(self) -> dict:
        return {
            "last_step": self.last_step,
            "max_lr": self.max_lr,
            "min_lr": self.min_lr,
            "cycle": self.cycle,
            "warmup": self.warmup,
        }

    def load_state_dict(self, sd: dict) -> None:
        self.last_step = int(sd["last_step"])
        self._apply()
