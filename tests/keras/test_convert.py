"""Random Keras models and sequences: the converted model computes the same outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import ConfigError, DataError
from stateline.keras import KerasSequenceModel, carry_from_keras, from_keras, to_keras
from stateline.nn import ModelConfig, SequenceModel
from stateline.stream import StateStore, StreamEngine

keras = pytest.importorskip("keras")

ACTIVATIONS = ["tanh", "sigmoid", "relu", "linear", "softsign", "elu"]


@st.composite
def keras_models(draw: st.DrawFn) -> dict[str, Any]:
    """A random stack: [Masking] (LSTM|GRU)+ [Dense|TimeDistributed(Dense)|Dropout|Activation]*.

    Drawn as a plain description: Keras draws Python random numbers when it builds layers,
    which hypothesis does not allow inside a strategy; :func:`build` makes the model.
    """
    recurrent = draw(st.integers(1, 2))
    last_sequences = draw(st.booleans())
    cells = []
    for index in range(recurrent):
        cells.append(
            dict(
                kind=draw(st.sampled_from(["lstm", "gru", "gru_v1"])),
                units=draw(st.integers(1, 6)),
                return_sequences=index < recurrent - 1 or last_sequences,
                activation=draw(st.sampled_from(["tanh", "relu", "softsign"])),
                recurrent_activation=draw(st.sampled_from(["sigmoid", "hard_sigmoid"])),
                use_bias=draw(st.booleans()),
            )
        )
    heads = [
        (
            draw(st.sampled_from(["dense", "time", "dropout", "activation"])),
            draw(st.integers(1, 4)),
            draw(st.sampled_from(ACTIVATIONS)),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    return dict(
        stateful=draw(st.booleans()),
        features=draw(st.integers(1, 4)),
        masked=draw(st.booleans()),
        cells=cells,
        heads=[h for h in heads if h[0] != "time" or last_sequences],
        seed=draw(st.integers(0, 2**16)),
    )


def build(spec: dict[str, Any]) -> Any:
    batch = 3 if spec["stateful"] else None
    layers: list[Any] = [keras.layers.Input(shape=(None, spec["features"]), batch_size=batch)]
    if spec["masked"]:
        layers.append(keras.layers.Masking(mask_value=0.0))
    for cell in spec["cells"]:
        options = {k: v for k, v in cell.items() if k != "kind"}
        if cell["kind"] == "lstm":
            layers.append(keras.layers.LSTM(stateful=spec["stateful"], **options))
        else:
            reset_after = cell["kind"] == "gru"
            layers.append(
                keras.layers.GRU(stateful=spec["stateful"], reset_after=reset_after, **options)
            )
    for choice, units, activation in spec["heads"]:
        if choice == "dense":
            layers.append(keras.layers.Dense(units, activation=activation))
        elif choice == "time":
            layers.append(keras.layers.TimeDistributed(keras.layers.Dense(units)))
        elif choice == "dropout":
            layers.append(keras.layers.Dropout(0.3))
        else:
            layers.append(keras.layers.Activation(activation))
    model = keras.Sequential(layers)
    rng = np.random.default_rng(spec["seed"])
    model.set_weights([rng.normal(scale=0.5, size=w.shape) for w in model.get_weights()])
    return model


def keras_call(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), dtype=np.float64)


def ours(model: KerasSequenceModel, x: np.ndarray, carry: Any = None) -> tuple[np.ndarray, Any]:
    with torch.no_grad():
        ys, carry = model(torch.as_tensor(x, dtype=torch.float32), carry)
    out = ys.numpy()
    return (out if model.config.sequence_output else out[:, -1]), carry


def sequences(rng: np.random.Generator, features: int, masked: bool) -> np.ndarray:
    x = rng.normal(size=(3, int(rng.integers(1, 7)), features)).astype(np.float32)
    if masked:
        x[rng.random(size=x.shape[:2]) < 0.3] = 0.0  # masked steps
    return x


@settings(max_examples=25, deadline=None)
@given(spec=keras_models(), seed=st.integers(0, 10_000))
def test_outputs_and_carry_agree_over_consecutive_calls(spec: dict[str, Any], seed: int) -> None:
    """Stateful Keras models carry their state between calls; ours is handed over as a value."""
    model, features, masked = build(spec), spec["features"], spec["masked"]
    converted = from_keras(model)
    rng = np.random.default_rng(seed)
    stateful = spec["stateful"]
    carry = None
    for call in range(3 if stateful else 1):
        x = sequences(rng, features, masked)
        expected = keras_call(model, x)
        got, carry = ours(converted, x, carry if stateful else None)
        if call and masked:
            # Keras outputs zeros for masked steps at the start of a call even when the state
            # is carried over; stateline repeats the stream's previous output (the call
            # boundary is not part of a stream). The carry is the same: later steps agree.
            leading = np.cumprod((x == 0.0).all(axis=-1), axis=1).astype(bool)
            if not converted.config.sequence_output:
                leading = leading.all(axis=1)  # the whole call was masked
            got[leading] = expected[leading]
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@settings(max_examples=10, deadline=None)
@given(spec=keras_models(), seed=st.integers(0, 10_000))
def test_streamed_through_the_engine_equals_keras(spec: dict[str, Any], seed: int) -> None:
    model, features, masked = build(spec), spec["features"], spec["masked"]
    converted = from_keras(model)
    engine = StreamEngine(converted, StateStore(converted))
    rng = np.random.default_rng(seed)
    x = sequences(rng, features, masked)
    streamed = np.stack(
        [engine.step(["a", "b", "c"], x[:, t]).predictions for t in range(x.shape[1])], axis=1
    )
    last = streamed if converted.config.sequence_output else streamed[:, -1]
    np.testing.assert_allclose(last, ours(converted, x)[0], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(last, keras_call(model, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_export_to_keras_and_back(cell: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    native = SequenceModel(ModelConfig(cell=cell, inputs=3, hidden=5, layers=2, outputs=2)).eval()  # type: ignore[arg-type]
    path = tmp_path / "model.keras"
    exported = to_keras(native, path)
    x = np.random.default_rng(0).normal(size=(2, 7, 3)).astype(np.float32)
    with torch.no_grad():
        expected = native(torch.as_tensor(x))[0].numpy()
    np.testing.assert_allclose(keras_call(exported, x), expected, atol=1e-5)
    again = from_keras(path)
    np.testing.assert_allclose(ours(again, x)[0], expected, atol=1e-5)


def test_unsupported_layers_are_named() -> None:
    model = keras.Sequential(
        [keras.layers.Input((None, 2)), keras.layers.LSTM(3), keras.layers.BatchNormalization()]
    )
    with pytest.raises(ConfigError, match="BatchNormalization") as error:
        from_keras(model)
    assert "TimeDistributed(Dense)" in str(error.value)


def test_serve_takes_a_keras_file(tmp_path: Path) -> None:
    """`stateline serve --model model.keras`: the service runs the converted model directly."""
    from stateline.anomaly import DetectorConfig
    from stateline.serve import Event, ServeConfig, StreamService

    model = keras.Sequential(
        [keras.layers.Input((None, 2)), keras.layers.LSTM(4, return_sequences=True),
         keras.layers.Dense(2)]
    )  # fmt: skip
    path = tmp_path / "model.keras"
    model.save(path)
    config = ServeConfig(
        model=str(path), token="t", detector=DetectorConfig(reference=10, warmup=2)
    )
    assert config.state_dir == tmp_path / "model.state"
    service = StreamService(config)
    x = np.random.default_rng(0).normal(size=(1, 15, 2)).astype(np.float32)
    answers = [service.step([Event("a", x[0, t].tolist(), t)])[0] for t in range(15)]
    forecasts = np.array([a["forecast"][0][0] for a in answers])
    np.testing.assert_allclose(forecasts, keras_call(model, x)[0], atol=1e-5)
    assert answers[-1]["scores"][0] is not None and answers[0]["scores"] == [None]
    service.snapshot()
    assert (tmp_path / "model.state" / "state.pt").is_file()


def test_only_chains_convert_and_the_layer_that_breaks_one_is_named() -> None:
    """#15, finding 14: two heads, a skipped layer or ConvLSTM1D are refused by name; a
    chain with ``unroll=True`` (same math) converts and computes what Keras computes."""
    inputs = keras.Input((None, 2))
    hidden = keras.layers.LSTM(4, return_sequences=True, name="shared")(inputs)
    heads = keras.Model(
        inputs, [keras.layers.Dense(1, name="a")(hidden), keras.layers.Dense(1, name="b")(hidden)]
    )
    with pytest.raises(ConfigError, match="2 outputs"):
        from_keras(heads)
    first = keras.layers.LSTM(4, return_sequences=True, name="first")(inputs)
    keras.layers.LSTM(3, return_sequences=True, name="unused")(first)
    skipping = keras.Model(inputs, keras.layers.Dense(1, name="skip")(first))
    converted = from_keras(skipping)  # "unused" is not part of the model: a chain
    assert isinstance(converted, KerasSequenceModel)
    second = keras.layers.LSTM(3, return_sequences=True, name="second")(first)
    branch = keras.Model(inputs, keras.layers.Dense(1, name="late")(first + 0 * second[..., :1]))
    with pytest.raises(ConfigError):  # an op layer joins two branches: refused, named
        from_keras(branch)
    conv = keras.Sequential([keras.Input((None, 5, 2)), keras.layers.ConvLSTM1D(2, 3, name="conv")])
    with pytest.raises(ConfigError, match="ConvLSTM1D") as refused:
        from_keras(conv)
    assert "layer 'conv' is not supported" in str(refused.value)
    unrolled = keras.Sequential(
        [keras.Input((7, 2)), keras.layers.LSTM(3, unroll=True, return_sequences=True)]
    )
    x = np.random.default_rng(0).normal(size=(2, 7, 2)).astype(np.float32)
    with torch.no_grad():
        got, _ = from_keras(unrolled)(torch.from_numpy(x))
    np.testing.assert_allclose(got.numpy(), unrolled.predict(x, verbose=0), atol=1e-5)


def test_a_stateful_models_state_is_not_lost_silently() -> None:
    """A Keras model that has run holds a state: from_keras warns, carry_from_keras takes it."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((None, 2), batch_size=2),
            keras.layers.LSTM(3, stateful=True, return_sequences=True),
            keras.layers.GRU(2, stateful=True, return_sequences=True),
            keras.layers.Dense(1),
        ]
    )
    x = np.random.default_rng(0).normal(size=(2, 6, 2)).astype("float32")
    model(x)
    following = keras.ops.convert_to_numpy(model(x))
    carry = carry_from_keras(model)  # the state after the second call
    assert carry is not None and [tuple(p.shape) for p in carry] == [(1, 2, 3)] * 2 + [(1, 2, 2)]
    for layer in model.layers[:2]:
        layer.reset_state()
    model(x)
    with pytest.warns(UserWarning, match="carry_from_keras"):
        converted = from_keras(model)
    with torch.no_grad():
        outputs, _ = converted(torch.as_tensor(x), carry_from_keras(model))
    np.testing.assert_allclose(outputs.numpy(), following, atol=1e-5)
    assert (
        carry_from_keras(keras.Sequential([keras.Input((None, 2)), keras.layers.LSTM(2)])) is None
    )


def test_what_is_not_a_keras_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model_or_path is not a Keras model"):
        from_keras(42)
    with pytest.raises(DataError, match="does not exist"):
        from_keras(tmp_path / "missing.keras")
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(b"PK\x03\x04 not a zip archive")
    with pytest.raises(DataError, match="cannot be read"):
        from_keras(damaged)


def test_conversion_leaves_the_callers_random_generators_alone() -> None:
    import random

    model = SequenceModel(ModelConfig(inputs=2, hidden=3))
    to_keras(model)  # Keras's first import and build
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    before = torch.random.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    from_keras(to_keras(model))
    assert torch.equal(torch.random.get_rng_state(), before[0])
    assert random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])


def test_a_model_computing_in_lower_precision_is_converted_with_a_warning() -> None:
    """mixed_float16 layers keep float32 weights but compute in float16: the converted model
    computes in float32, close to Keras but not equal, and says so; a float32 model does not
    warn."""
    import warnings

    keras.utils.set_random_seed(4)
    mixed = keras.Sequential(
        [
            keras.Input((None, 2)),
            keras.layers.LSTM(4, return_sequences=True, dtype="mixed_float16"),
            keras.layers.Dense(1, dtype="float32"),
        ]
    )
    x = np.random.default_rng(1).normal(size=(2, 9, 2)).astype("float32")
    with pytest.warns(UserWarning, match="lower precision") as caught:
        converted = from_keras(mixed)
    ours = [str(w.message) for w in caught if "lower precision" in str(w.message)]
    assert len(ours) == 1 and "mixed_float16" in ours[0]
    with torch.no_grad():
        outputs, _ = converted(torch.as_tensor(x))
    expected = keras.ops.convert_to_numpy(mixed(x)).astype("float32")
    np.testing.assert_allclose(outputs.numpy(), expected, atol=1e-2)
    plain = keras.Sequential([keras.Input((None, 2)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        from_keras(plain)
