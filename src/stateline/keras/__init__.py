"""Bring your Keras model: convert Keras 3 recurrent models to stateline models and back.

``from_keras(model_or_path)`` gives a :class:`KerasSequenceModel` with the same
outputs and an explicit carry, ready for the streaming engine and the
service; ``to_keras(model, path)`` exports a converted model, or a stateline
``SequenceModel``, to a ``.keras`` file; ``carry_from_keras(model)`` takes the
state a stateful Keras model holds as the converted model's carry. Keras itself
is only imported by these functions (``pip install 'stateline[keras]'``).
"""

from ._convert import SUPPORTED_LAYERS as SUPPORTED_LAYERS
from ._convert import carry_from_keras as carry_from_keras
from ._convert import from_keras as from_keras
from ._convert import to_keras as to_keras
from ._model import KerasModelConfig as KerasModelConfig
from ._model import KerasSequenceModel as KerasSequenceModel
from ._model import LayerSpec as LayerSpec

__all__ = [
    "SUPPORTED_LAYERS",
    "KerasModelConfig",
    "KerasSequenceModel",
    "LayerSpec",
    "carry_from_keras",
    "from_keras",
    "to_keras",
]
