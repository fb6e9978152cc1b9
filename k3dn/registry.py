"""One registry for every network the suite can build: K3DN variants, ablations and baselines.

Models register with ``@register_model`` (a factory returning an ``nn.Module``); the packages that hold
them are imported explicitly below, never discovered by scanning folders.
"""

from __future__ import annotations

import importlib
from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
def _model_modules() -> list[str]:
    from baselines import MODEL_MODULES

    return ["k3dn.models", *(f"baselines.{m}" for m in MODEL_MODULES)]


_loaded = False


def register_model(fn: Callable[..., nn.Module] | None = None, *, name: str | None = None):
    """Register ``fn`` under ``name`` (default: the function's name). Usable bare or with ``name=``."""

    def deco(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or f.__name__
        if key in _REGISTRY and _REGISTRY[key] is not f:
            raise ValueError(f"model name {key!r} is registered twice")
        _REGISTRY[key] = f
        return f

    return deco(fn) if fn is not None else deco


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for module in _model_modules():
            importlib.import_module(module)
        _loaded = True


def list_models(prefix: str = "") -> list[str]:
    _load_all()
    return sorted(k for k in _REGISTRY if k.startswith(prefix))


def create_model(name: str, **overrides) -> nn.Module:
    """Build the registered model ``name``; ``overrides`` go to its factory (ablation knobs)."""
    _load_all()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None
    model = factory(**overrides)
    model.registry_name = name
    model.registry_overrides = dict(overrides)
    return model
