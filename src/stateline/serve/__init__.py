"""The streaming service: a saved forecaster served over HTTP and WebSocket, with a dashboard.

``create_app(ServeConfig(model=...))`` builds the FastAPI app (model and state
store owned by its lifespan); ``StreamService`` is the same service as plain
Python. FastAPI and uvicorn are only imported here, never by ``import stateline``.
"""

from ._client import ColumnClient as ColumnClient
from ._columns import ColumnAnswer as ColumnAnswer
from ._columns import ColumnBatch as ColumnBatch
from ._config import ServeConfig as ServeConfig
from ._events import Event as Event
from ._service import StreamService as StreamService
from ._wire import ARROW as ARROW
from ._wire import answer_from_arrow as answer_from_arrow
from ._wire import answer_from_json as answer_from_json
from ._wire import batch_to_arrow as batch_to_arrow
from ._wire import batch_to_json as batch_to_json

__all__ = [
    "ARROW",
    "ColumnAnswer",
    "ColumnBatch",
    "ColumnClient",
    "Event",
    "ServeConfig",
    "StreamService",
    "answer_from_arrow",
    "answer_from_json",
    "batch_to_arrow",
    "batch_to_json",
    "create_app",
]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from ._app import create_app

        return create_app
    raise AttributeError(f"module 'stateline.serve' has no attribute {name!r}")
