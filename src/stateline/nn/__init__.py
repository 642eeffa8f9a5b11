"""PyTorch recurrent models that speak the carry contract.

``initial_carry(n)``, ``step(carry, x) -> (carry, y)`` and
``forward(xs, carry, reset=..., mask=...) -> (ys, carry)``: the recurrent state
is a value the caller owns, never hidden inside a layer.
:func:`check_carry_contract` checks a model against the contract.
"""

from ._carry import Carry as Carry
from ._carry import CarryModel as CarryModel
from ._carry import detach_carry as detach_carry
from ._carry import keep_where as keep_where
from ._carry import reset_carry as reset_carry
from ._carry import select_rows as select_rows
from ._carry import top_hidden as top_hidden
from ._config import ModelConfig as ModelConfig
from ._config import Seq2SeqConfig as Seq2SeqConfig
from ._contract import CONTRACT_PROPERTIES as CONTRACT_PROPERTIES
from ._contract import check_carry_contract as check_carry_contract
from ._model import SequenceModel as SequenceModel
from ._model import last_step as last_step
from ._seq2seq import Seq2Seq as Seq2Seq
from ._stack import RecurrentStack as RecurrentStack

__all__ = [
    "CONTRACT_PROPERTIES",
    "Carry",
    "CarryModel",
    "ModelConfig",
    "RecurrentStack",
    "Seq2Seq",
    "Seq2SeqConfig",
    "SequenceModel",
    "check_carry_contract",
    "detach_carry",
    "keep_where",
    "last_step",
    "reset_carry",
    "select_rows",
    "top_hidden",
]
