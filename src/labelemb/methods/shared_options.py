"""The shared options in each method's signature: ``init_std``, ``ignore_index`` and, for a chunked
head, ``chunk_size``, declared once on :class:`~labelemb.methods.base.Method`'s constructor.

A method's constructor names its own options and hands the shared ones on as ``**options``. Its
signature is what a reader of the method asks for its options: :func:`labelemb.methods.options`
(and through it ``build``, presets, tuning and ``labelemb methods``), the config's type checks
(``typing.get_type_hints`` of the constructor) and ``inspect.signature`` of the class. So
:func:`list_shared_options` writes the shared options into that signature (``__signature__``,
``__annotations__``), once, when the class is made: without it every method would repeat three
options and their defaults, or every reader would walk the constructors' chain itself.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable


def list_shared_options(init: Callable[..., None], shared_from: Callable[..., None], chunked: bool) -> None:
    """Give ``init``, a constructor that hands ``**options`` on to ``shared_from`` (the base's), the
    signature and type hints of the shared options it takes, after its own.

    ``chunk_size`` is one of them only for a ``chunked`` method; one that ``init`` names itself is
    left to it. A constructor without ``**options`` names every option it takes, and is left as it is.
    """
    signature = inspect.signature(init)
    *own, last = signature.parameters.values()
    if last.kind is not inspect.Parameter.VAR_KEYWORD:
        return
    shared = [
        parameter
        for name, parameter in inspect.signature(shared_from).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        and name not in signature.parameters
        and (chunked or name != "chunk_size")
    ]
    init.__signature__ = signature.replace(parameters=[*own, *shared])
    hints = typing.get_type_hints(shared_from)
    init.__annotations__ = {**init.__annotations__, **{p.name: hints[p.name] for p in shared}}
