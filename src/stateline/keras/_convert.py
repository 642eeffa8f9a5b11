"""``from_keras`` / ``to_keras``: Keras 3 recurrent models to stateline models and back."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._errors import ConfigError, DataError, StatelineError, describe
from ..nn import Carry, SequenceModel
from ..train._seeding import kept_random_state
from ._model import ACTIVATIONS, KerasModelConfig, KerasSequenceModel, LayerSpec

__all__ = ["SUPPORTED_LAYERS", "from_keras", "to_keras"]

SUPPORTED_LAYERS = (
    "InputLayer",
    "Masking",
    "LSTM",
    "GRU",
    "Dense",
    "TimeDistributed(Dense)",
    "Dropout",
    "Activation",
)


def _keras() -> Any:
    """Import Keras, on its torch backend unless ``KERAS_BACKEND`` names another.

    (Keras's own default, TensorFlow, is also what it writes into a new
    ``~/.keras/keras.json``, so that file says nothing about a choice.)
    """
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as error:
        raise StatelineError(
            "Converting Keras models needs Keras 3.\n  Fix: pip install 'stateline[keras]'"
        ) from error
    return keras


def from_keras(model_or_path: Any) -> KerasSequenceModel:
    """A stateline model computing what the Keras model computes, with an explicit carry.

    Accepts a Keras 3 model (Sequential, or Functional as a chain of layers)
    or the path of a ``.keras`` file, built from :data:`SUPPORTED_LAYERS`,
    stateful or not. The result streams through :class:`~stateline.StreamEngine`
    and serves with ``stateline serve --model model.keras``. It starts from a
    zero carry: the state a stateful Keras model holds is not part of it, so
    such a model, with a state not zero, gets a warning; take the state
    with :func:`carry_from_keras`. The caller's random generators are left
    as they were.
    """
    with kept_random_state():  # Keras draws seeds as it builds layers
        return _from_keras(_keras(), model_or_path)


def carry_from_keras(model: Any) -> Carry | None:
    """The state a stateful Keras model holds, as the carry of :func:`from_keras`'s model
    (``(1, batch, units)`` per part: an LSTM's ``h`` then ``c``, a GRU's ``h``), or None
    when no layer is stateful (or none has run yet)."""
    keras = _keras()
    _require_model(model)
    parts: list[Tensor] = []
    for layer in _recurrent_layers(model):
        states = getattr(layer, "states", None) if getattr(layer, "stateful", False) else None
        if not states:
            return None
        parts += [
            torch.as_tensor(np.asarray(keras.ops.convert_to_numpy(state)))[None] for state in states
        ]
    return tuple(parts) if parts else None


def _from_keras(keras: Any, model_or_path: Any) -> KerasSequenceModel:
    model = _loaded(keras, model_or_path)
    _require_supported(model)
    _require_chain(model)
    inputs = model.input_shape
    if isinstance(inputs, list) or len(inputs) != 3:
        raise ConfigError(
            describe(
                "model",
                "one input of shape (batch, time, features)",
                f"input shape {inputs}",
                problem="is not a sequence model stateline can convert.",
            )
        )
    specs: list[LayerSpec] = []
    weights: list[np.ndarray] = []
    mask_value = None
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "TimeDistributed" and type(layer.layer).__name__ == "Dense":
            layer, kind = layer.layer, "Dense"
        config = layer.get_config()
        if kind in ("InputLayer", "Dropout"):
            continue
        if kind == "Masking":
            if specs:
                raise ConfigError(
                    describe(
                        "Masking",
                        "the first layer",
                        f"after {len(specs)} layer(s)",
                        problem="is misplaced.",
                    )
                )
            mask_value = float(config["mask_value"])
            continue
        if kind in ("LSTM", "GRU"):
            _check_recurrent(layer, config)
            spec = LayerSpec(
                kind=kind.lower(),
                units=int(config["units"]),
                activation=_activation(config["activation"], layer.name),
                recurrent_activation=_activation(config["recurrent_activation"], layer.name),
                return_sequences=bool(config["return_sequences"]),
                reset_after=bool(config.get("reset_after", True)),
                use_bias=bool(config["use_bias"]),
            )
        elif kind == "Dense":
            spec = LayerSpec(
                kind="dense",
                units=int(config["units"]),
                activation=_activation(config["activation"], layer.name),
                use_bias=bool(config["use_bias"]),
            )
        elif kind == "Activation":
            spec = LayerSpec(
                kind="activation", activation=_activation(config["activation"], layer.name)
            )
        else:
            raise ConfigError(
                describe(
                    f"layer {layer.name!r}",
                    f"one of {', '.join(SUPPORTED_LAYERS)}",
                    kind,
                    problem="is not supported.",
                )
            )
        specs.append(spec)
        weights += [np.asarray(w) for w in layer.get_weights()]
    converted = KerasSequenceModel(
        KerasModelConfig(inputs=int(inputs[-1]), layers=tuple(specs), mask_value=mask_value)
    )
    with torch.no_grad():
        for parameter, value in zip(converted.weights_, weights, strict=True):
            parameter.copy_(torch.as_tensor(value, dtype=parameter.dtype))
    _warn_if_not_float32(model)
    carry = carry_from_keras(model)
    if carry is not None and any(bool(part.any()) for part in carry):
        warnings.warn(
            "the Keras model holds a state (its stateful layers have run); the converted model "
            "starts from a zero carry. Pass carry_from_keras(model) as its carry to go on "
            "from that state, or reset its layers first (layer.reset_state()).",
            stacklevel=3,
        )
    return converted.eval()


def _warn_if_not_float32(model: Any) -> None:
    """The converted model computes in float32: a Keras model computing in float16 or
    bfloat16 (a ``mixed_float16`` policy) answers about 1e-4 to 1e-3 apart from it."""
    policies = {
        layer.name: str(getattr(getattr(layer, "dtype_policy", None), "name", "float32"))
        for layer in model.layers
        if str(getattr(getattr(layer, "dtype_policy", None), "compute_dtype", "float32"))
        not in ("float32", "float64")
    }
    if policies:
        warnings.warn(
            f"layers {policies} of the Keras model compute in lower precision; the converted "
            "model computes in float32 with the same weights, so its outputs differ from "
            "Keras's by that precision (about 1e-4 to 1e-3). Compare on your data, or convert "
            "a float32 copy (keras.config.set_dtype_policy('float32') before building it).",
            stacklevel=3,
        )


def _loaded(keras: Any, model_or_path: Any) -> Any:
    """The Keras model itself, or the one a ``.keras`` file holds, with a clear error."""
    if not isinstance(model_or_path, str | Path):
        _require_model(model_or_path)
        return model_or_path
    path = Path(model_or_path)
    if not path.is_file():
        raise DataError(
            describe("model_or_path", "a .keras file", str(path), problem="does not exist.")
        )
    try:
        return keras.saving.load_model(str(path), compile=False)
    except Exception as error:  # Keras says "File not found" for a damaged file
        raise DataError(
            describe(
                "model_or_path",
                "a .keras file Keras 3 can read (keras.saving.load_model)",
                f"{path}: {type(error).__name__}: {error}",
                problem="cannot be read.",
                fix="Save the model again with model.save('model.keras').",
            )
        ) from error


def _require_model(model: Any) -> None:
    if not hasattr(model, "layers") or not hasattr(model, "input_shape"):
        raise ConfigError(
            describe(
                "model_or_path",
                "a Keras 3 model, or the path of a .keras file",
                f"{type(model).__name__} {model!r:.80}",
                problem="is not a Keras model.",
            )
        )


def _recurrent_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if type(layer).__name__ in ("LSTM", "GRU")]


def to_keras(model: nn.Module, path: str | Path | None = None, *, stateful: bool = False) -> Any:
    """A Keras 3 model with the same outputs (saved to ``path`` if given, a ``.keras`` file).

    Takes a converted :class:`KerasSequenceModel` or a stateline
    :class:`~stateline.nn.SequenceModel` (LSTM/GRU stack and linear head).
    Keras keeps no carry you can hand over: pass ``stateful=True`` to get
    layers that carry it between calls themselves (batch size fixed at 1).
    """
    with kept_random_state():  # Keras draws seeds as it builds layers
        return _to_keras(_keras(), model, path, stateful)


def _to_keras(keras: Any, model: nn.Module, path: str | Path | None, stateful: bool) -> Any:
    converted = model if isinstance(model, KerasSequenceModel) else _from_sequence_model(model)
    config = converted.config
    batch = 1 if stateful else None
    layers: list[Any] = [keras.layers.Input(shape=(None, config.inputs), batch_size=batch)]
    if config.mask_value is not None:
        layers.append(keras.layers.Masking(mask_value=config.mask_value))
    for spec in config.layers:
        if spec.kind in ("lstm", "gru"):
            options = dict(
                units=spec.units,
                activation=spec.activation,
                recurrent_activation=spec.recurrent_activation,
                return_sequences=spec.return_sequences,
                use_bias=spec.use_bias,
                stateful=stateful,
            )
            if spec.kind == "gru":
                options["reset_after"] = spec.reset_after
            layers.append(
                (keras.layers.LSTM if spec.kind == "lstm" else keras.layers.GRU)(**options)
            )
        elif spec.kind == "dense":
            layers.append(
                keras.layers.Dense(spec.units, activation=spec.activation, use_bias=spec.use_bias)
            )
        else:
            layers.append(keras.layers.Activation(spec.activation))
    result = keras.Sequential(layers)
    values = [p.detach().cpu().double().numpy() for p in converted.weights_]
    result.set_weights(values)
    if path is not None:
        result.save(str(path))
    return result


def _from_sequence_model(model: nn.Module) -> KerasSequenceModel:
    if not isinstance(model, SequenceModel):
        raise ConfigError(
            describe(
                "model",
                "a KerasSequenceModel or a stateline SequenceModel",
                type(model).__name__,
                problem="cannot be exported to Keras.",
            )
        )
    config = model.config
    kind = config.cell
    specs = [
        LayerSpec(kind=kind, units=config.hidden, activation="tanh") for _ in range(config.layers)
    ]
    specs.append(LayerSpec(kind="dense", units=config.outputs))
    converted = KerasSequenceModel(KerasModelConfig(inputs=config.inputs, layers=tuple(specs)))
    values: list[torch.Tensor] = []
    rnn = model.stack.rnn
    hidden = config.hidden
    for index in range(config.layers):
        w_ih = getattr(rnn, f"weight_ih_l{index}").detach()
        w_hh = getattr(rnn, f"weight_hh_l{index}").detach()
        b_ih = getattr(rnn, f"bias_ih_l{index}").detach()
        b_hh = getattr(rnn, f"bias_hh_l{index}").detach()
        if kind == "lstm":  # PyTorch and Keras both order the gates i, f, g(c), o
            values += [w_ih.T, w_hh.T, b_ih + b_hh]
        else:  # PyTorch r, z, n; Keras z, r, h (reset after, two biases)
            order = torch.cat(
                [
                    torch.arange(hidden, 2 * hidden),
                    torch.arange(hidden),
                    torch.arange(2 * hidden, 3 * hidden),
                ]
            )
            values += [w_ih[order].T, w_hh[order].T, torch.stack([b_ih[order], b_hh[order]])]
    values += [model.head.weight.detach().T, model.head.bias.detach()]
    with torch.no_grad():
        for parameter, value in zip(converted.weights_, values, strict=True):
            parameter.copy_(value.to(parameter.dtype))
    return converted.eval()


def _activation(value: Any, layer: str) -> str:
    name = value if isinstance(value, str) else str(getattr(value, "__name__", value))
    if name not in ACTIVATIONS:
        raise ConfigError(
            describe(
                f"activation of layer {layer!r}",
                f"one of {sorted(ACTIVATIONS)}",
                repr(name),
                problem="is not supported.",
            )
        )
    return name


def _check_recurrent(layer: Any, config: dict[str, Any]) -> None:
    """``go_backwards`` changes the math and is refused; ``unroll`` does not and is taken."""
    if config.get("go_backwards"):
        raise ConfigError(
            describe(
                f"layer {layer.name!r}",
                "go_backwards=False",
                "go_backwards=True",
                problem="reads its sequence backwards, which a stream cannot.",
            )
        )


def _kind(layer: Any) -> str:
    kind = type(layer).__name__
    if kind == "TimeDistributed" and type(layer.layer).__name__ == "Dense":
        return "TimeDistributed(Dense)"
    return kind


def _require_supported(model: Any) -> None:
    """Name the first layer stateline cannot convert (ConvLSTM1D ...), before anything else."""
    for layer in model.layers:
        if _kind(layer) not in SUPPORTED_LAYERS:
            raise ConfigError(
                describe(
                    f"layer {layer.name!r}",
                    f"one of {', '.join(SUPPORTED_LAYERS)}",
                    _kind(layer),
                    problem="is not supported.",
                )
            )


def _source(layer: Any) -> Any:
    """The layer whose output is ``layer``'s one input (a Masking mask aside), else None."""
    try:
        value = layer.input
        tensors = value if isinstance(value, (list, tuple)) else [value]
        data = [tensor for tensor in tensors if "bool" not in str(tensor.dtype)]
        return data[0]._keras_history.operation if len(data) == 1 else None
    except (AttributeError, ValueError):  # called more than once
        return None


def _require_chain(model: Any) -> None:
    """Refuse any graph that is not one chain: input -> layer -> layer -> ... -> output."""
    outputs = list(model.outputs)
    if len(outputs) != 1:
        raise ConfigError(
            describe(
                "model",
                "one output at the end of a chain of layers",
                f"{len(outputs)} outputs",
                problem="is not a chain of layers.",
            )
        )
    previous = None
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            previous = layer
            continue
        source = _source(layer)
        expected = previous.name if previous is not None else "the model's input"
        chained = source is not None and (
            source is previous or (previous is None and type(source).__name__ == "InputLayer")
        )
        if not chained:
            raise ConfigError(
                describe(
                    f"layer {layer.name!r}",
                    f"the output of {expected!r} as its only input (a chain)",
                    "another input" if source is None else f"the output of {source.name!r}",
                    problem="is not part of a chain of layers.",
                )
            )
        previous = layer
    producer = outputs[0]._keras_history.operation
    if producer is not previous:
        raise ConfigError(
            describe(
                "model",
                f"its last layer {getattr(previous, 'name', None)!r} as the output",
                f"the output of {producer.name!r}",
                problem="is not a chain of layers.",
            )
        )
