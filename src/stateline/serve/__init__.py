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

__all__ = [
    "ColumnAnswer",
    "ColumnBatch",
    "ColumnClient",
    "Event",
    "ServeConfig",
    "StreamService",
    "create_app",
]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from ._app import create_app

        return create_app
    raise AttributeError(f"module 'stateline.serve' has no attribute {name!r}")
