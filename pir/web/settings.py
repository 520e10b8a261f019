"""Settings of ``pir serve``: env ``PIR_SERVE__HOST``, ``PIR_SERVE__API_KEY``, ... (``PIR_`` tree, pir.core.config)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServeSettings(BaseModel):
    """The web server: where it binds, who may call it, and how much one request may ask for."""

    host: str = "127.0.0.1"
    port: int = 8000
    #: Required when ``host`` is not a loopback address; then every route needs ``X-API-Key`` (or ``?api_key=``).
    api_key: SecretStr | None = None
    max_upload_bytes: int = 20 * 1024 * 1024  # per drawing
    max_pixels: int = 40_000_000  # per drawing (a 300 dpi sheet is ~20 M); Pillow's bomb guard still applies
    max_images: int = 7
    max_k: int = 200
    #: Searches run at once (each on a worker thread); ``max_queued`` more wait up to ``queue_timeout`` s, else 503.
    max_concurrent: int = 2
    #: Searches that may wait for a slot (each holds at most one request's uploads); beyond that: 503 at once.
    max_queued: int = 16
    queue_timeout: float = 30.0
    #: Uploaded query drawings kept (under their sha256, so searches can be reloaded from their URL); beyond this
    #: many MiB the least recently used are deleted (their URLs then ask for the drawing again).
    max_stored_mb: int = 2048
    #: Slow clients: seconds a connection may take to send a request's headers, and a request's body once the route
    #: reads it (408 beyond); an idle keep-alive connection is closed after ``keep_alive_timeout`` s.
    header_timeout: float = 10.0
    body_timeout: float = 120.0
    keep_alive_timeout: float = 5.0


class _Env(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIR_", env_nested_delimiter="__", extra="ignore")
    serve: ServeSettings = ServeSettings()


def get_serve_settings(**overrides: object) -> ServeSettings:
    """``ServeSettings`` from the environment (``PIR_SERVE__*``), then keyword overrides (``None`` = keep)."""
    base = _Env().serve
    extra = {k: v for k, v in overrides.items() if v is not None}
    return ServeSettings.model_validate({**base.model_dump(), **extra}) if extra else base


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(serve: ServeSettings) -> None:
    """Refuse to bind beyond loopback without an API key.

    Raises:
        ValueError: ``host`` is not loopback and ``api_key`` is unset or empty.
    """
    key = serve.api_key.get_secret_value() if serve.api_key else ""
    if not is_loopback(serve.host) and not key.strip():
        raise ValueError(
            f"refusing to bind {serve.host}: serving beyond this machine needs an API key; "
            "set PIR_SERVE__API_KEY (clients send it as the X-API-Key header)"
        )
