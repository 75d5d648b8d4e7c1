"""Turning string aliases and config dicts into the library's small objects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras


def resolve(
    identifier: Any, aliases: Mapping[str, Callable[[], Any]], base: type, kind: str
) -> Any:
    """Returns ``identifier`` if it is a ``base`` instance, else builds it from an alias or a
    serialized config; raises ``ValueError`` naming ``kind`` and the known aliases otherwise."""
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in aliases:
        return aliases[identifier.lower()]()
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, base):
            return obj
    raise ValueError(
        f"Unknown {kind} {identifier!r}: expected one of {sorted(aliases)} or an instance of "
        f"{base.__module__}.{base.__qualname__}."
    )
