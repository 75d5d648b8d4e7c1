"""Saving files so that a failure never leaves a half-written or truncated target."""

from __future__ import annotations

import functools
import os
import uuid
from typing import Any

import keras


def save_atomically(write: Any, filepath: Any, overwrite: bool, kwargs: dict) -> None:
    """Calls ``write(path, overwrite=...)`` on a temporary file in ``filepath``'s folder, then
    renames it onto ``filepath`` (atomic on POSIX and Windows). Paths it cannot do this for
    (file objects, remote URLs, unzipped folders, shards, a file kept by ``overwrite=False``)
    go to Keras as they are."""
    plain_file = isinstance(filepath, str | os.PathLike) and "://" not in os.fspath(filepath)
    if (
        not plain_file
        or kwargs.get("zipped") is False
        or kwargs.get("max_shard_size") is not None
        or (not overwrite and os.path.exists(filepath))
    ):
        write(filepath, overwrite=overwrite)
        return
    folder, name = os.path.split(os.path.abspath(os.fspath(filepath)))
    # the temporary name ends with the target's, so Keras sees the same extension
    temporary = os.path.join(folder, f".tmp-{uuid.uuid4().hex[:12]}-{name}")
    try:
        write(temporary, overwrite=True)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, filepath)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


class AtomicSaving:
    """A mixin for a ``keras.Model`` subclass: ``save`` and ``save_weights`` through
    :func:`save_atomically`."""

    def save(self, filepath: Any, overwrite: bool = True, **kwargs: Any) -> None:
        """``keras.Model.save``, written atomically: the file is written next to ``filepath``
        and renamed onto it, so a failure (a reward that cannot be serialized, a full disk, a
        killed process, e.g. inside ``ModelCheckpoint``) leaves an existing file untouched."""
        save_atomically(functools.partial(super().save, **kwargs), filepath, overwrite, kwargs)

    def save_weights(self, filepath: Any, overwrite: bool = True, **kwargs: Any) -> None:
        """``keras.Model.save_weights``, written atomically as :meth:`save`."""
        write = functools.partial(super().save_weights, **kwargs)
        save_atomically(write, filepath, overwrite, kwargs)


class TrainerConfig:
    """A mixin for the trainers (``keras.Model`` subclasses): ``get_config``/``from_config``
    over their components (Keras objects, serialized; ``_components``) and plain settings
    (``_settings``), and ``compile_from_config`` for a ``compile`` that takes no loss."""

    _components: tuple[str, ...] = ()
    _settings: tuple[str, ...] = ()
    #: component name -> the attribute holding it, where they differ
    _component_attributes: dict[str, str] = {}

    def get_config(self) -> dict:
        serialize = keras.saving.serialize_keras_object
        config = {"name": self.name, "trainable": self.trainable}
        for key in self._components:
            config[key] = serialize(getattr(self, self._component_attributes.get(key, key)))
        config.update({key: getattr(self, key) for key in self._settings})
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Any:
        config = dict(config)
        for key in cls._components:
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects
                )
        return cls(**config)

    def compile_from_config(self, config: dict) -> None:
        config = keras.saving.deserialize_keras_object(dict(config))
        config.pop("loss", None)  # (always None: the trainer's objective is not compile's)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)
