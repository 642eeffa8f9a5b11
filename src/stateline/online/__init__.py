"""Online learning: a deployed model keeps learning from the streams it serves.

:class:`OnlineLearner` buffers each stream's recent steps, trains a shadow
copy of the model on them (truncated BPTT over many streams at once, flagged
steps left out), and swaps the new weights into the running
:class:`~stateline.StreamEngine` atomically, recomputing live carries by the
policy of :class:`OnlineConfig`.
"""

from ._config import OnlineConfig as OnlineConfig
from ._learner import OnlineLearner as OnlineLearner
from ._learner import UpdateReport as UpdateReport

__all__ = ["OnlineConfig", "OnlineLearner", "UpdateReport"]
