"""Comparison backends: a registry of name -> (declared capabilities, factory).

``numpy`` (blocked BLAS on host threads), ``torch`` (CUDA when present, else the CPU; the fused Triton
kernel where it pays) and ``dask`` (the numpy kernel as tasks on a cluster) are registered here; each
lives in its own module and imports only the shared kernel and :mod:`~faceaudit.compare.backends.base`.
:func:`make_backend` checks a run's options against the backend's :class:`Capabilities` before it
builds anything, so an option that cannot take effect is a named error, not silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from faceaudit.compare.backends import dask_backend, numpy_backend, torch_backend
from faceaudit.compare.backends.base import Backend, BackendOptions, Capabilities
from faceaudit.errors import InputError

__all__ = ["Backend", "BackendOptions", "Capabilities", "Registration", "register_backend", "registered",
           "make_backend", "resolve_backend", "describe_score_identity", "BACKENDS"]

Factory = Callable[[np.ndarray, BackendOptions], Backend]


@dataclass(frozen=True)
class Registration:
    """A backend as the registry knows it."""

    name: str
    capabilities: Capabilities
    factory: Factory
    #: words for a score identity the backend writes (for a checkpoint's message), None when not its own
    describe: Callable[[str], str | None] = lambda identity: None


REGISTRY: dict[str, Registration] = {}


def register_backend(registration: Registration) -> None:
    """Add (or replace) a backend under its name."""
    REGISTRY[registration.name] = registration


def registered() -> tuple[str, ...]:
    """The names a run may ask for, ``auto`` first."""
    return ("auto", *REGISTRY)


register_backend(Registration("numpy", numpy_backend.CAPABILITIES, numpy_backend.create,
                              numpy_backend.describe_score_identity))
register_backend(
    Registration(
        "torch",
        torch_backend.CAPABILITIES,
        torch_backend.create,
        lambda i: torch_backend.describe_score_identity(i) if i.startswith("torch-") else None,
    )
)
register_backend(Registration("dask", dask_backend.CAPABILITIES, dask_backend.create))

#: the built-in choices (``auto``: torch when it sees a GPU, else numpy)
BACKENDS = registered()


def resolve_backend(name: str) -> str:
    """``auto`` -> ``torch`` when torch sees a CUDA device, else ``numpy``; other names as given."""
    if name not in REGISTRY and name != "auto":
        raise InputError(f"unknown backend {name!r}; use one of {registered()}")
    if name != "auto":
        return name
    try:
        import torch
    except ImportError:
        return "numpy"
    return "torch" if torch.cuda.is_available() else "numpy"


def check_options(reg: Registration, options: BackendOptions) -> None:
    """Refuse options the backend cannot take (named errors, before anything is built)."""
    caps = reg.capabilities
    if options.precision not in caps.precisions:
        others = [n for n, r in REGISTRY.items() if options.precision in r.capabilities.precisions]
        raise InputError(f"the {reg.name} backend computes in {' or '.join(caps.precisions)} only; "
                         f"{options.precision} needs --backend {' or '.join(others) or '(none registered)'}")
    if options.device is not None and not caps.devices:
        raise InputError(
            f"the {reg.name} backend takes no device (it runs on {', '.join(caps.device_kinds)}); "
            "--device is for --backend torch"
        )
    if options.scheduler is not None and not caps.scheduler:
        raise InputError(
            f"the {reg.name} backend takes no scheduler address; --scheduler is for --backend dask"
        )
    if options.threads is not None and (int(options.threads) < 1):
        raise InputError(f"threads must be >= 1, got {options.threads}")
    if int(options.n_workers) < 1:
        raise InputError(f"workers must be >= 1, got {options.n_workers}")
    if not options.connect_timeout > 0:
        raise InputError(f"connect_timeout must be > 0 s, got {options.connect_timeout}")


def make_backend(name: str, emb: np.ndarray, options: BackendOptions) -> Backend:
    """The backend ``name`` (or ``auto``) for the float32 matrix ``emb``, its options checked first."""
    reg = REGISTRY[resolve_backend(name)]
    check_options(reg, options)
    return reg.factory(emb, options)


def describe_score_identity(identity: str) -> str:
    """What computed the scores of a backend's ``score_identity``, and how to select it."""
    for reg in REGISTRY.values():
        words = reg.describe(identity)
        if words is not None:
            return words
    return identity
