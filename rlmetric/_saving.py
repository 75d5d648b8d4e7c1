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
    [`save_atomically`][rlmetric._saving.save_atomically]."""

    def save(self, filepath: Any, overwrite: bool = True, **kwargs: Any) -> None:
        """``keras.Model.save``, written atomically: the file is written next to ``filepath``
        and renamed onto it, so a failure (a reward that cannot be serialized, a full disk, a
        killed process, e.g. inside ``ModelCheckpoint``) leaves an existing file untouched."""
        save_atomically(functools.partial(super().save, **kwargs), filepath, overwrite, kwargs)

    def save_weights(self, filepath: Any, overwrite: bool = True, **kwargs: Any) -> None:
        """``keras.Model.save_weights``, written atomically as [`save`][rlmetric._saving.save]."""
        write = functools.partial(super().save_weights, **kwargs)
        save_atomically(write, filepath, overwrite, kwargs)


def _deserialize_component(owner: type, key: str, config: dict, custom_objects: Any) -> Any:
    """A trainer's component from its config; a class that is not known here is named first,
    with the two ways to make it known (Keras would put that at the end of the whole config)."""
    try:
        return keras.saving.deserialize_keras_object(config, custom_objects=custom_objects)
    except (TypeError, ValueError) as error:
        name = config.get("class_name")
        known = keras.saving.get_registered_object(
            config.get("registered_name") or name, custom_objects=custom_objects
        )
        if name is None or known is not None or (config.get("module") or "").startswith("keras"):
            raise
        # ValueError: Keras re-wraps a TypeError after the whole config of the trainer
        raise ValueError(
            f"Cannot load the {key} of {owner.__name__}: its class {name!r} is not known in "
            f"this process. Pass custom_objects={{{name!r}: {name}}} to "
            "keras.saving.load_model, or decorate the class with "
            "@keras.saving.register_keras_serializable()."
        ) from error


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
                config[key] = _deserialize_component(cls, key, config[key], custom_objects)
        return cls(**config)

    def compile_from_config(self, config: dict) -> None:
        config = keras.saving.deserialize_keras_object(dict(config))
        config.pop("loss", None)  # (always None: the trainer's objective is not compile's)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)


def refuse_unsavable_checkpoints(trainer: Any, callbacks: Any) -> None:
    """Refuses, before training, a ``keras.callbacks.ModelCheckpoint`` that saves the whole
    trainer when the trainer's config cannot be serialized (a ``rewards.from_numpy`` reward):
    Keras would fail only after the first epoch."""
    whole = [
        callback
        for callback in callbacks or []
        if isinstance(callback, keras.callbacks.ModelCheckpoint) and not callback.save_weights_only
    ]
    if not whole:
        return
    try:
        trainer.get_config()
    except TypeError as error:
        raise ValueError(
            f"callbacks: ModelCheckpoint({whole[0].filepath!r}) saves the whole trainer after "
            f"each epoch, which cannot be saved: {error} Checkpoint the weights instead: "
            "ModelCheckpoint('....weights.h5', save_weights_only=True)."
        ) from None
