"""Translator registry: name -> class. Each model module registers its class with
`@register(name)`; `get_model(name)` imports `medtrans.stages.translate.<name>` on demand."""

import importlib

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
