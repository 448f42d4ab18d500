"""Translator registry: name -> class. Each model module registers its class with
`@register(name)`; `get_model(name)` imports `medtrans.stages.translate.<name>` on demand.
The names themselves are the catalogue's (shared/catalogue/stages.py); `check_catalogue` says
where the registered classes and the catalogue disagree."""

import importlib
import pkgutil

from medtrans.shared.config.translate import MODELS

_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: `@register("cyclegan") class CycleGAN(Translator): ...`."""

    def wrap(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"translator {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def get_model(name: str) -> type:
    """The class of translator `name` (imports its module the first time)."""
    if name not in _REGISTRY:
        if name not in MODELS:
            raise KeyError(f"unknown translator {name!r}; known: {', '.join(MODELS)}")
        importlib.import_module(f"medtrans.stages.translate.{name}")
        if name not in _REGISTRY:
            raise KeyError(f"module medtrans.stages.translate.{name} did not register {name!r}")
    return _REGISTRY[name]


def registered() -> dict[str, type]:
    return dict(_REGISTRY)


def check_catalogue() -> None:
    """Import every module of this package and check that the registered translators are the
    catalogue's, each in the module of its name; raise naming what to add or fix."""
    package = importlib.import_module("medtrans.stages.translate")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    problems = [
        f"{name!r} is registered (by {cls.__module__}) but not in the catalogue: add it to TRANSLATORS "
        "in shared/catalogue/stages.py"
        for name, cls in _REGISTRY.items()
        if name not in MODELS
    ]
    problems += [
        f"catalogue translator {name!r} has no class: add @register({name!r}) in stages/translate/{name}.py"
        for name in MODELS
        if name not in _REGISTRY
    ]
    problems += [
        f"{name!r} is registered by {cls.__module__}, not by medtrans.stages.translate.{name}"
        for name, cls in _REGISTRY.items()
        if name in MODELS and cls.__module__ != f"medtrans.stages.translate.{name}"
    ]
    if problems:
        raise LookupError("translator registry vs catalogue: " + "; ".join(problems))
