"""The interface every enrichment backend implements."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

from pir.enrich.inputs import FigureInputs

#: Bump when prompts or templates change so cached descriptions are regenerated.
PROMPT_VERSION = "1"


class EnrichError(RuntimeError):
    """A backend could not produce descriptions (after its retries)."""


class MalformedAnswer(EnrichError):
    """A backend answered, but not in the expected shape (not JSON, no message content, ...)."""


@dataclass(frozen=True)
class Generation:
    """Descriptions of one figure and, when the backend's output was replaced, why (``invalid`` or ``error``)."""

    descriptions: list[str]
    fallback: str | None = None


class Enricher(ABC):
    """A description backend: ``describe(inputs, k)`` returns up to ``k`` validated descriptions.

    Attributes:
        name: backend name (``template``, ``openai``, ``llamacpp``).
        model: model identifier that goes into the cache key.
        calls: backend invocations so far (HTTP requests for ``openai``, generations for ``llamacpp``,
            ``describe`` calls for ``template``); thread-safe.
        fallbacks: figures whose backend output was replaced by the template output.
        parallel: whether ``describe`` may run in several threads at once.
    """

    name: str = "base"
    model: str = ""
    parallel: bool = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self.fallbacks = 0

    @property
    def calls(self) -> int:
        """Backend invocations so far."""
        return self._calls

    def _count_call(self) -> None:
        with self._lock:
            self._calls += 1

    def _count_fallback(self) -> None:
        with self._lock:
            self.fallbacks += 1

    @abstractmethod
    def describe(self, inputs: FigureInputs, k: int) -> list[str]:
        """Up to ``k`` distinct descriptions of the figure, each naming the object or an alias."""

    def generate(self, inputs: FigureInputs, k: int) -> Generation:
        """Like :meth:`describe`, also saying whether the output is a fallback."""
        return Generation(self.describe(inputs, k))

    def close(self) -> None:  # noqa: B027 - an optional hook; most backends hold nothing
        """Release resources (HTTP clients, loaded models)."""

    def __enter__(self) -> Enricher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r})"
