"""The webhook sink: each action POSTed as JSON, with an ``Idempotency-Key`` header."""

from __future__ import annotations

import logging
import time
import urllib.parse

from brightscan.autoscan.actions import ActionRequest, SinkError
from brightscan.autoscan.config import WebhookSinkSettings as _HTTP
from brightscan.autoscan.sinks.http import send_json

__all__ = ["WebhookSink"]

log = logging.getLogger(__name__)


class WebhookSink:
    """POST each action as JSON to a URL, with an ``Idempotency-Key`` header.

    The receiver must deduplicate on that key (or on ``idempotency_key`` in the body) for the
    exactly-once effect: the outbox may deliver an action again after a crash, and a POST whose
    answer was lost is sent again.
    """

    def __init__(self, url: str, *, timeout: float = _HTTP.timeout_s, retries: int = _HTTP.retries,
                 backoff: float = _HTTP.backoff_s,
                 headers: dict[str, str] | None = None):
        self.url = url
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._headers = dict(headers or {})  # may hold a secret: never logged

    def __repr__(self) -> str:
        return f"WebhookSink({urllib.parse.urlsplit(self.url).netloc!r})"

    def deliver(self, action: ActionRequest) -> str:
        """POST the action; re-send after a 5xx or no answer (the receiver deduplicates)."""
        body = {"kind": action.kind, "objectId": action.object_id,
                "idempotency_key": action.idempotency_key, "payload": action.payload}
        headers = {**self._headers, "Idempotency-Key": action.idempotency_key}
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(8.0, self.backoff * 2 ** (attempt - 1)))
            status, _, answer, error = send_json("POST", self.url, body, headers, self.timeout)
            if status is not None and 200 <= status < 300:
                return f"webhook answered {status}"
            message = (answer or {}).get("message", "") if isinstance(answer, dict) else ""
            if status is not None and status < 500 and status != 429:
                raise SinkError(f"webhook: HTTP {status} {message}".strip(),
                                retryable=status in (408, 409))
            last = f"HTTP {status} {message}".strip() if status else error
            log.debug("webhook %s: %s (attempt %d)", action.idempotency_key, last, attempt + 1)
        raise SinkError(f"webhook: {last}", retryable=True, ambiguous=True)
