"""One registry for every network the suite can build: K3DN variants, ablations and baselines.

Models register with ``@register_model`` (a factory returning an ``nn.Module``), optionally with the
``checkpoint_filter_fn(state_dict, model) -> state_dict`` that turns a published file's contents into the
module's state dict. The suite's own packages are imported explicitly below, never discovered by scanning
folders; other installed packages add theirs through the entry-point group ``k3dn.models`` (each entry point
names a module whose import registers its models, the way pytest finds its plugins), so a researcher's model
runs through every command, table and test of the suite without a fork:

    [project.entry-points."k3dn.models"]
    my_method = "my_package.models"

A plugin that cannot be imported is reported in one line (logger ``k3dn.registry``) and its models are absent;
a plugin model named like another model is an error naming both.

A name may carry a tag after a dot, ``ifan_single.16bit``: the same network, another set of published weights
(the tag selects the entry of ``baselines/checkpoints.yaml``, with its own input protocol).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import logging
from collections.abc import Callable

import torch.nn as nn

from k3dn.errors import UserError, join_lines

log = logging.getLogger(__name__)

#: The entry-point group of installed packages that register models.
ENTRY_POINT_GROUP = "k3dn.models"

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_FILTERS: dict[str, Callable[[dict, nn.Module], dict]] = {}
_PLUGIN_FAILURES: dict[str, str] = {}  # entry point -> why its module was not imported
_loaded = False


class UnknownModelError(KeyError):
    """An unregistered model name; the message names close matches."""

    def __str__(self) -> str:
        return str(self.args[0])


class ModelNameClash(UserError, ValueError):
    """Two factories under one model name; the message names where each comes from."""


def _model_modules() -> list[str]:
    from baselines import MODEL_MODULES

    return ["k3dn.models", *(f"baselines.{m}" for m in MODEL_MODULES)]


def _plugin_entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _entry_point_label(ep: importlib.metadata.EntryPoint) -> str:
    dist = f" ({ep.dist.name} {ep.dist.version})" if ep.dist is not None else ""
    return f"{ENTRY_POINT_GROUP} entry point '{ep.name} = {ep.value}'{dist}"


def _load_plugins() -> None:
    for ep in _plugin_entry_points():
        label = _entry_point_label(ep)
        try:
            ep.load()
        except ModelNameClash as e:
            raise ModelNameClash(f"{label}: {e}") from e
        except (Exception, SystemExit) as e:  # a broken plugin must not take the suite's own models with it
            _PLUGIN_FAILURES[label] = join_lines(f"{type(e).__name__}: {e}")
            log.warning("%s: not loaded, its models are not registered: %s", label, _PLUGIN_FAILURES[label])
        else:
            _PLUGIN_FAILURES.pop(label, None)


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

        old = _REGISTRY.get(key)
        # a module imported again (a failed plugin import retried) registers its own factories again: no clash
        if old is not None and _origin(old) != _origin(f):
            raise ModelNameClash(
                f"model name {key!r} is registered by {_origin(old)} and by {_origin(f)}; rename one of them"
            )
        _REGISTRY[key] = build
        if checkpoint_filter_fn is not None:
            _FILTERS[key] = checkpoint_filter_fn
        else:
            _FILTERS.pop(key, None)
        return build

    return deco(fn) if fn is not None else deco


def _origin(f: Callable) -> str:
    return f"{f.__module__}.{f.__qualname__}"


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for module in _model_modules():
            importlib.import_module(module)
        _load_plugins()  # after the suite's own, so that a clash names the plugin's entry point
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
        failed = "".join(f"; not loaded: {label}: {why}" for label, why in _PLUGIN_FAILURES.items())
        raise UnknownModelError(
            f"unknown model {name!r}; {hint}{len(_REGISTRY)} are registered "
            f"(k3dn.registry.list_models(), or `k3dn baselines list` for published weights){failed}"
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
