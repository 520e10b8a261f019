"""A small OpenAI-compatible chat-completions client (retries, backoff, Retry-After) and the optional captioner.

The API key is sent as a bearer token and nowhere else: it is never logged, never part of an error message and never
in a ``repr``.

Credentials: a base URL with a ``user:password@`` sends them as HTTP basic auth (the request URL itself carries no
userinfo, so no log line can show it); an API key sends ``Authorization: Bearer KEY``. Both go in the one
``Authorization`` header, so a URL with credentials *and* an API key is refused with one line (keep one of them).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from pir.core.errors import redact_url
from pir.enrich.base import EnrichError, MalformedAnswer

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class ChatClient:
    """POSTs chat-completions requests to ``{base_url}/chat/completions``.

    Timeouts, connection errors, 429 and 5xx answers are retried up to ``max_retries`` times with exponential
    backoff and jitter; a ``Retry-After`` header (seconds or an HTTP date) is honoured up to ``max_backoff``.
    ``calls`` counts HTTP requests (retries included).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        url, basic = split_userinfo(base_url.rstrip("/") + "/chat/completions")
        self.url = url  # without userinfo: what httpx logs and what errors show
        self.shown_url = redact_url(base_url.rstrip("/") + "/chat/completions")  # user:***@ kept as a hint
        self.model = model
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._secret = key.strip() if key and key.strip() else None
        if basic and self._secret:
            raise ValueError(
                f"{self.shown_url}: the URL has a user:password and an API key is set too; both would be the "
                "Authorization header: keep one (the URL's credentials for basic auth, or the key for Bearer)"
            )
        headers = {"Content-Type": "application/json"}
        if self._secret:
            headers["Authorization"] = f"Bearer {self._secret}"
        self._secrets = [x for x in (self._secret, basic[1] if basic else None) if x]
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout), headers=headers, auth=httpx.BasicAuth(*basic) if basic else None
        )
        self._lock = threading.Lock()
        self.calls = 0

    def __repr__(self) -> str:
        return f"ChatClient(url={self.shown_url!r}, model={self.model!r}, api_key={'***' if self._secret else None})"

    def close(self) -> None:
        self._client.close()

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            seconds = _parse_retry_after(retry_after)
            if seconds is not None:
                return min(max(seconds, 0.0), self.max_backoff)
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + random.random())  # jitter: 0.5x .. 1.5x

    def complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one chat-completions request (``model`` is filled in) and return the decoded JSON answer.

        Raises:
            EnrichError: after the retries, on a non-retryable HTTP status, or when the answer is not JSON.
        """
        body = {"model": self.model, **payload}
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            with self._lock:
                self.calls += 1
            retry_after = None
            try:
                resp = self._client.post(self.url, json=body)
            except httpx.TimeoutException:
                last = f"timeout after {self._client.timeout.read}s"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {self._redact(str(exc))}"
            else:
                if resp.status_code < 300:
                    try:
                        data = resp.json()
                    except ValueError:
                        raise MalformedAnswer(f"{self.shown_url} answered with non-JSON content") from None
                    if not isinstance(data, dict):
                        raise MalformedAnswer(
                            f"{self.shown_url} answered with a JSON {type(data).__name__}, not an object"
                        )
                    return data
                snippet = self._redact(resp.text[:200].replace("\n", " "))
                last = f"HTTP {resp.status_code}: {snippet}"
                if resp.status_code not in _RETRY_STATUS:
                    raise EnrichError(f"{self.shown_url} failed with {last}")
                retry_after = resp.headers.get("Retry-After")
            if attempt < self.max_retries:
                delay = self._delay(attempt, retry_after)
                logger.warning(
                    "%s: %s; retry %d/%d in %.1fs", self.shown_url, last, attempt + 1, self.max_retries, delay
                )
                time.sleep(delay)
        raise EnrichError(f"{self.shown_url} failed after {self.max_retries + 1} attempts: {last}")


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``(url without userinfo, (user, password))`` (percent-decoded), or ``(url, None)`` when it has none."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host)), (unquote(parts.username or ""), unquote(parts.password or ""))


def _parse_retry_after(value: str) -> float | None:
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def message_text(answer: dict[str, Any]) -> str:
    """The assistant text of a chat-completions answer (MalformedAnswer when the shape is wrong)."""
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedAnswer("chat-completions answer without choices[0].message.content") from None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise MalformedAnswer("chat-completions answer content is not text")
    return content


CAPTION_PROMPT = (
    "Describe the object shown in this patent drawing in one factual sentence: what it is, its main parts and the "
    "viewpoint. Do not guess brand names."
)


class Captioner:
    """Captions figure images with an OpenAI-compatible vision chat endpoint (image sent as a base64 data URL).

    ``base_url``, ``model``, ``api_key`` and the keyword options (``timeout``, ``max_retries``, ``backoff``,
    ``max_backoff``) go to the :class:`ChatClient`; ``max_side`` bounds the image sent.
    """

    def __init__(self, *args: Any, max_side: int = 1024, **client_options: Any) -> None:
        self.client = ChatClient(*args, **client_options)
        model = self.client.model
        self.model = model
        self.max_side = max_side

    @property
    def calls(self) -> int:
        return self.client.calls

    def close(self) -> None:
        self.client.close()

    def image_key(self, image_path: Path) -> str:
        """Cache key of a caption: sha256 of the image bytes and the caption model."""
        h = hashlib.sha256(Path(image_path).read_bytes())
        h.update(b"\0" + self.model.encode())
        return h.hexdigest()

    def data_url(self, image_path: Path) -> str:
        """The image as a grayscale PNG data URL, longest side at most ``max_side`` pixels."""
        from PIL import Image  # lazy: start-up (PIL)

        with Image.open(image_path) as im:
            im.load()
            img = im.convert("L")
        img.thumbnail((self.max_side, self.max_side))
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def caption(self, image_path: Path) -> str:
        """One caption for the image (EnrichError when the endpoint fails)."""
        payload = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": CAPTION_PROMPT},
                        {"type": "image_url", "image_url": {"url": self.data_url(image_path)}},
                    ],
                }
            ],
            "max_tokens": 120,
            "temperature": 0.0,
        }
        text = " ".join(message_text(self.client.complete(payload)).split())
        if not text:
            raise EnrichError("the captioner returned an empty caption")
        return text
