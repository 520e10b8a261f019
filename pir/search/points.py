"""Point conversion shared by the backends: canonical ids, vectors and stored points from backend records."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from pir.search.words import SparseVector

if TYPE_CHECKING:
    pass


from pir.search.query import IMAGE, TEXT, WORDS, Hit, StoredPoint, StoreError


def normalize_id(point_id: Any) -> str:
    """Canonical uuid string of a point id.

    Raises:
        StoreError: The id is not a uuid.
    """
    try:
        return str(point_id if isinstance(point_id, uuid.UUID) else uuid.UUID(str(point_id)))
    except (ValueError, TypeError, AttributeError) as exc:
        raise StoreError(f"point id {point_id!r} is not a uuid (use pir.ingest.schema.point_id)") from exc


def as_vector(vector: Any, name: str = IMAGE) -> np.ndarray | None:
    """A point's dense vector ``name`` as float32 (the unnamed one for ``image`` in a legacy layout); None if absent."""
    if vector is None:
        return None
    if isinstance(vector, dict):
        vector = vector.get(name, vector.get("") if name == IMAGE else None)
    elif name != IMAGE:  # a legacy point has only the image vector
        return None
    return None if vector is None else np.asarray(vector, dtype=np.float32)


def as_sparse(vector: Any) -> SparseVector | None:
    """A point's ``words`` vector (Edge or qdrant-client sparse vector) as a :class:`SparseVector`; None if absent."""
    sv = vector.get(WORDS) if isinstance(vector, dict) else None
    if sv is None or not len(sv.indices):
        return None
    return SparseVector(tuple(int(i) for i in sv.indices), tuple(float(v) for v in sv.values))


def to_stored_point(r: Any, with_vectors: bool) -> StoredPoint:
    """A backend record (Edge or qdrant-client, same field names) as a :class:`StoredPoint`."""
    if not with_vectors:
        return StoredPoint(id=str(r.id), payload=dict(r.payload or {}))
    return StoredPoint(
        id=str(r.id),
        payload=dict(r.payload or {}),
        vector=as_vector(r.vector),
        text=as_vector(r.vector, TEXT),
        words=as_sparse(r.vector),
    )


def to_hits(rows: Any, with_vectors: bool) -> list[list[Hit]]:
    """Backend scored points, one list per query, as :class:`Hit` lists."""
    return [
        [
            Hit(
                id=str(p.id),
                score=float(p.score),
                payload=dict(p.payload or {}),
                vector=as_vector(p.vector) if with_vectors else None,
            )
            for p in row
        ]
        for row in rows
    ]
