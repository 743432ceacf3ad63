"""The HTTP side: one place that sends a JSON request to GroundRAG's REST API and reads its errors."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr


class GroundRAGError(Exception):
    """An error answer of the API, with its stable code (e.g. collection_forbidden, rate_limited)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"GroundRAG answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Connection(BaseModel):
    """Where the service is and the API key to use (a key scoped to the collection)."""

    model_config = ConfigDict(frozen=True)
    base_url: str = Field(description="The service's root, e.g. https://rag.example.com (no /api/v1)")
    api_key: SecretStr = Field(description="grk_... from an administrator")
    timeout: float = Field(60.0, description="Seconds for one request (answers can take a while)")

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}

    def post(self, path: str, body: dict[str, Any]) -> Any:
        with httpx.Client(timeout=self.timeout) as client:
            return _read(client.post(self._url(path), json=body, headers=self._headers()))

    async def apost(self, path: str, body: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            return _read(await client.post(self._url(path), json=body, headers=self._headers()))


def _read(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:500]
    raise GroundRAGError(response.status_code, code, message)
