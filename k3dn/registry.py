"""One registry for every network the suite can build: K3DN variants, ablations and baselines.

Models register with ``@register_model`` (a factory returning an ``nn.Module``), optionally with the
``checkpoint_filter_fn(state_dict, model) -> state_dict`` that turns a published file's contents into the
module's state dict. The packages that hold them are imported explicitly below, never discovered by scanning
folders.

A name may carry a tag after a dot, ``ifan_single.16bit``: the same network, another set of published weights
(the tag selects the entry of ``baselines/checkpoints.yaml``, with its own input protocol).
"""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_FILTERS: dict[str, Callable[[dict, nn.Module], dict]] = {}
_loaded = False


class UnknownModelError(KeyError):
    """An unregistered model name; the message names close matches."""

    def __str__(self) -> str:
        return str(self.args[0])


def _model_modules() -> list[str]:
    from baselines import MODEL_MODULES

    return ["k3dn.models", *(f"baselines.{m}" for m in MODEL_MODULES)]


def split_tag(name: str) -> tuple[str, str | None]:
    """``"ifan_single.16bit"`` -> ``("ifan_single", "16bit")``; an untagged name -> ``(name, None)``."""
    arch, _, tag = name.partition(".")
    return arch, tag or None


def register_model(
    fn: Callable[..., nn.Module] | None = None,
    *,
    name: str | None = None,
    checkpoint_filter_fn: Callable[[dict, nn.Module], dict] | None = None,
):
    """Register a factory under ``name`` (default: the function's name), with the filter its published
    checkpoints go through. Usable bare or with keywords. Calling the factory directly gives the same model
    as :func:`create_model` (it records its name and overrides)."""

    def deco(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or f.__name__
        if "." in key:
            raise ValueError(f"model name {key!r}: a dot separates a weight tag, it cannot be part of a name")

        @functools.wraps(f)
        def build(**overrides) -> nn.Module:
            model = f(**overrides)
            model.registry_name = key
            model.registry_overrides = dict(overrides)
            return model

        if key in _REGISTRY:
            raise ValueError(f"model name {key!r} is registered twice")
        _REGISTRY[key] = build
        if checkpoint_filter_fn is not None:
            _FILTERS[key] = checkpoint_filter_fn
        return build

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
    """Build the registered model ``name`` (a tag after a dot is kept in ``registry_name``, see the module
    docstring); ``overrides`` go to its factory (ablation knobs)."""
    _load_all()
    arch, tag = split_tag(name)
    if arch not in _REGISTRY:
        close = difflib.get_close_matches(arch, _REGISTRY, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}; {hint}{len(_REGISTRY)} are registered "
            "(k3dn.registry.list_models(), or `k3dn baselines list` for published weights)"
        )
    model = _REGISTRY[arch](**overrides)
    model.registry_name = name
    return model


def model_modules(name: str) -> set[str]:
    """The modules that define model ``name``'s factory and checkpoint filter (its tag ignored)."""
    _load_all()
    arch = split_tag(name)[0]
    return {f.__module__ for f in (_REGISTRY.get(arch), _FILTERS.get(arch)) if f is not None}


def checkpoint_filter(name: str) -> Callable[[dict, nn.Module], dict] | None:
    """The ``checkpoint_filter_fn`` registered with model ``name`` (its tag ignored), or None."""
    _load_all()
    return _FILTERS.get(split_tag(name)[0])
