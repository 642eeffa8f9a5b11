"""``ColumnClient``: feed a running ``stateline serve`` columns at a time, from Python."""

from __future__ import annotations

import json
from typing import Any

from .._errors import DataError, describe
from ._columns import ColumnAnswer, ColumnBatch
from ._wire import ARROW, answer_from_arrow, answer_from_json, batch_to_arrow, batch_to_json

__all__ = ["ColumnClient"]


class ColumnClient:
    """Steps many streams per request through ``POST /v1/columns``; one connection, kept open.

    ``step(stream, values, seq=..., start=..., end=...)`` sends ``n`` events as
    columns (``values`` ``(n, inputs)`` or ``(n, k, inputs)``) and returns the
    :class:`ColumnAnswer` as arrays. ``binary=True`` (default) speaks Arrow
    IPC, ``False`` JSON columns. A refused request raises
    :class:`~stateline.DataError` with the server's reason; refused rows come
    back with status ``error`` and their reason in ``answer.errors``.

    Example, against a server on port 8000::

        with ColumnClient("http://127.0.0.1:8000", token) as client:
            answer = client.step(["pump-1", "pump-2"], [[20.1], [19.8]], seq=[0, 0])
            answer.status_names, answer.forecast[:, 0, 0, 0]
    """

    def __init__(self, url: str, token: str, *, binary: bool = True, timeout: float = 30.0) -> None:
        import httpx

        self.binary = binary
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def step(
        self,
        stream: Any,
        values: Any,
        *,
        seq: Any = None,
        start: Any = None,
        end: Any = None,
    ) -> ColumnAnswer:
        """Send one batch of columns; the answer row for row."""
        return self.send(ColumnBatch.of(stream, values, seq=seq, start=start, end=end))

    def send(self, batch: ColumnBatch) -> ColumnAnswer:
        if self.binary:
            response = self._client.post(
                "/v1/columns", content=batch_to_arrow(batch), headers={"Content-Type": ARROW}
            )
        else:
            response = self._client.post(
                "/v1/columns",
                content=json.dumps(batch_to_json(batch)),
                headers={"Content-Type": "application/json"},
            )
        if response.status_code != 200:
            try:
                reason = response.json().get("detail")
            except ValueError:
                reason = response.text[:200]
            raise DataError(
                describe(
                    "request",
                    "an answer (HTTP 200)",
                    f"HTTP {response.status_code}: {reason}",
                    problem="was refused by the server.",
                )
            )
        if self.binary:
            return answer_from_arrow(response.content)
        return answer_from_json(response.json())

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ColumnClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
