"""Free-space and write-permission checks before pir writes to its data directory (no heavy imports).

The embedded Qdrant Edge store writes through memory-mapped files: on a full disk (tmpfs in particular) a write to
such a page kills the process with SIGBUS, with no message and possibly half a batch in the segment. So every writer
checks first and stops with one line (:class:`~pir.core.errors.DiskSpaceError` / :class:`~pir.core.errors.DataDirError`)
before anything is written:

* :func:`ensure_writable`: the data dir can be created and written (a read-only mount or missing permission);
* :func:`ensure_space`: before each ingest batch (vectors, payloads, WAL and enrich cache rows, with a safety
  factor) plus ``Settings.min_free_mb`` (256 MB by default: the store allocates in steps of 32 MB WAL segments and
  new segments of about 100 MB, measured on tmpfs);
* :func:`ensure_space_for_optimize`: before ``optimize()``, which rewrites the segments (the store's size again).

A store stopped this way was never written past a batch boundary, so it opens again, unchanged, once space is freed.

Checks alone cannot stop *another* process from filling the disk between the check and the write (that killed pir
with SIGBUS). So the embedded store also keeps a :class:`Reserve`: a ballast file beside the store, preallocated with
``posix_fallocate`` while pir embeds, released right before each store write and taken back right after it. A
process that fills the disk meanwhile hits ENOSPC itself; pir then fails to take its reserve back and stops with one
line between two writes, with everything written so far intact.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pir.core.errors import DataDirError, DiskSpaceError

if TYPE_CHECKING:
    from pir.core.config import Settings

__all__ = [
    "MB",
    "RESERVE_MB",
    "Reserve",
    "batch_bytes",
    "copy_tree_sparse",
    "dir_bytes",
    "ensure_space",
    "ensure_space_for_optimize",
    "ensure_writable",
    "free_bytes",
]

MB = 1 << 20
#: Bytes written per figure besides its vector(s): payload, descriptions, index and enrich-cache rows.
PER_FIGURE_OVERHEAD = 16 * 1024
#: Vector + payload are written twice (write-ahead log, then the segment); the margin absorbs the rest.
WRITE_FACTOR = 3


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (what ``disk_usage`` can measure before the folder is created)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def free_bytes(path: str | Path) -> int:
    """Free bytes (for this user) on the file system holding ``path`` (or its nearest existing parent)."""
    return shutil.disk_usage(_existing(Path(path))).free


def dir_bytes(path: str | Path) -> int:
    """Bytes actually allocated under ``path`` (sparse files count what they use, not their length)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            blocks = getattr(st, "st_blocks", None)
            total += st.st_size if blocks is None else blocks * 512
    return total


def copy_tree_sparse(src: str | Path, dst: str | Path, *, skip: tuple[str, ...] = ()) -> int:
    """Copy the folder ``src`` to the new folder ``dst``, keeping the holes of sparse files (the store's memory-mapped
    files are mostly holes: a plain copy would write their full length). Returns the bytes of data copied.

    ``skip``: file and folder names left out.
    """
    src, dst = Path(src), Path(dst)
    copied = 0
    for dirpath, dirnames, files in os.walk(src):
        dirnames[:] = [d for d in dirnames if d not in skip]
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            if name in skip:
                continue
            copied += _copy_file_sparse(Path(dirpath) / name, dst / rel / name)
    return copied


def _copy_file_sparse(src: Path, dst: Path) -> int:
    copied = 0
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        size = os.fstat(fi.fileno()).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fi.fileno(), pos, os.SEEK_DATA)
                end = os.lseek(fi.fileno(), start, os.SEEK_HOLE)
            except OSError as e:
                if e.errno == errno.ENXIO:  # only a hole from pos to the end
                    break
                start, end = pos, size  # no SEEK_DATA support: copy everything
            fi.seek(start)
            fo.seek(start)
            left = end - start
            while left > 0:
                chunk = fi.read(min(left, 1 << 20))
                if not chunk:
                    break
                fo.write(chunk)
                left -= len(chunk)
                copied += len(chunk)
            pos = end
        fo.truncate(size)
    shutil.copystat(src, dst)
    return copied


def batch_bytes(n_figures: int, dim: int = 512, *, sparse_dim: int = 0) -> int:
    """Estimated bytes one batch of ``n_figures`` writes (float32 ``dim`` vectors, an optional text vector...)."""
    per = 4 * dim * 2 + 8 * sparse_dim + PER_FIGURE_OVERHEAD  # image (+ text) vector, sparse entries, the rest
    return WRITE_FACTOR * n_figures * per


def _mb(n: int) -> str:
    return f"{n / MB:.1f} MB"


def ensure_writable(data_dir: str | Path) -> Path:
    """Create ``data_dir`` if needed and check that a file can be written in it; returns it.

    Raises:
        DataDirError: Read-only file system, permission denied, or a file in the way.
    """
    d = Path(data_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".pir-write-check-", dir=d)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        why = {
            errno.EROFS: "is on a read-only file system",
            errno.EACCES: "is not writable (permission denied)",
            errno.EPERM: "is not writable (operation not permitted)",
            errno.ENOSPC: "is on a full disk",
            errno.EEXIST: "is a file, not a folder",
            errno.ENOTDIR: "has a file in its path",
        }.get(e.errno or 0, f"cannot be written ({e.strerror or e})")
        raise DataDirError(
            f"data dir {d.resolve() if d.exists() else d} {why}: choose a writable one with --data-dir or PIR_DATA_DIR"
        ) from None
    return d


def ensure_space(data_dir: str | Path, need: int, *, margin_mb: float = 256, what: str = "this batch") -> None:
    """Stop before writing ``need`` bytes when the data dir's file system has less than ``need`` + margin free.

    Raises:
        DiskSpaceError: One line naming the data dir, the space needed and the space free. Nothing was written.
    """
    margin = int(margin_mb * MB)
    free = free_bytes(data_dir)
    if free < need + margin:
        raise DiskSpaceError(
            f"not enough free space in the data dir {Path(data_dir).resolve()}: {what} needs "
            f"{_mb(need + margin)} ({_mb(need)} + {_mb(margin)} margin), {_mb(free)} free; nothing was written, "
            "free some space (or lower PIR_MIN_FREE_MB) and run the same command again to resume"
        )


def ensure_space_for_optimize(data_dir: str | Path, store_dir: str | Path, *, margin_mb: float = 256) -> None:
    """``optimize()`` rewrites the segments: require the store's current size plus the margin.

    Raises:
        DiskSpaceError: See :func:`ensure_space`.
    """
    need = dir_bytes(store_dir) if Path(store_dir).exists() else 0
    held = _reserved_bytes(store_dir)  # the store's reserve is released right before optimize(): it is free space
    ensure_space(data_dir, max(0, need - 2 * held), margin_mb=margin_mb, what="optimizing the store")


def _reserved_bytes(store_dir: str | Path) -> int:
    """Bytes held by :class:`Reserve` ballast files (``.<collection>.reserve``) in ``store_dir``."""
    total = 0
    for p in Path(store_dir).glob(".*.reserve") if Path(store_dir).is_dir() else ():
        try:
            total += p.stat().st_blocks * 512
        except OSError:
            continue
    return total


# ------------------------------------------------------------------------------------- settings-aware entry points
#: Margin (MB) when the data dir holds only caches (the vectors live on a Qdrant server).
CACHE_ONLY_MARGIN_MB = 16


def _margin(settings: Settings) -> float:
    """``min_free_mb`` with the embedded store; a small cache-only margin when vectors go to a Qdrant server."""
    if getattr(settings.qdrant, "url", None) is not None:
        return min(CACHE_ONLY_MARGIN_MB, settings.min_free_mb)
    return settings.min_free_mb


def check_data_dir(settings: Settings) -> None:
    """Before opening anything for writing: the data dir is writable and holds the margin (``min_free_mb``).

    Raises:
        DataDirError: See :func:`ensure_writable`.
        DiskSpaceError: See :func:`ensure_space`.
    """
    data_dir = settings.data_dir
    ensure_writable(data_dir)
    ensure_space(data_dir, 0, margin_mb=_margin(settings), what="opening the store for writing")


def check_batch(settings: Settings, n_figures: int, dim: int = 512) -> None:
    """Before a batch (enrich cache rows, vectors, payloads): its estimated size plus the margin must be free.

    Raises:
        DiskSpaceError: See :func:`ensure_space`.
    """
    ensure_space(
        settings.data_dir,
        batch_bytes(n_figures, dim),
        margin_mb=_margin(settings),
        what=f"a batch of {n_figures} figures",
    )


def check_optimize(settings: Settings) -> None:
    """Before ``optimize()`` of the embedded store (a Qdrant server checks its own disk).

    Raises:
        DiskSpaceError: See :func:`ensure_space_for_optimize`.
    """
    if getattr(settings.qdrant, "url", None) is None:
        ensure_space_for_optimize(
            settings.data_dir,
            settings.store_dir,
            margin_mb=settings.min_free_mb,
        )


#: Free MB the embedded Qdrant Edge store needs just to open (a new WAL segment and appendable segment pages are
#: mapped and touched at load): measured on tmpfs, `pir info` died with SIGBUS at 40 MB free and worked at 70 MB.
STORE_OPEN_MB = 96


def check_store_open(store_dir: str | Path, *, margin_mb: float = STORE_OPEN_MB) -> None:
    """Before ``EdgeShard.load``/``create``: enough free space to open the store at all (else SIGBUS, no message).

    Raises:
        DiskSpaceError: One line naming the store's folder and the space needed.
    """
    ensure_space(store_dir, 0, margin_mb=margin_mb, what="opening the embedded store")


# ------------------------------------------------------------------------------------ the reserve (ballast file)
#: MB the :class:`Reserve` keeps beyond a write's estimate: the store grows its memory-mapped files page by page
#: (measured on tmpfs: at most 0.6 MB per upsert of 64 points with 512-d + 384-d vectors), plus room for a new
#: write-ahead-log or vector chunk page run and the engine's small files.
RESERVE_MB = 32


class Reserve:
    """Space kept for the embedded store's next write: a ballast file preallocated with ``posix_fallocate``.

    Protocol around every store write: :meth:`hold` (grow the ballast to the write's need; raises when the disk no
    longer has it), :meth:`release` (give the space back, right before the write), write, :meth:`hold` again. The
    memory-mapped pages a write touches then come from the released ballast, not from space another process may
    have taken since the last check (a page fault on a full disk is a SIGBUS, with no message).

    Args:
        path: The ballast file (on the store's file system).
        data_dir: Named in the error message.
    """

    def __init__(self, path: str | Path, data_dir: str | Path) -> None:
        self.path = Path(path)
        self.data_dir = Path(data_dir)
        self._fd: int | None = None
        self.size = 0

    def hold(self, nbytes: int) -> None:
        """Make the ballast at least ``nbytes`` (a no-op when it already is).

        Raises:
            DiskSpaceError: The file system no longer has the space; the ballast keeps what it had.
        """
        if nbytes <= self.size:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.posix_fallocate(self._fd, 0, nbytes)
        except OSError as e:
            if self._fd is not None:
                try:
                    os.ftruncate(self._fd, self.size)  # give back what a partial allocation took
                except OSError:
                    pass
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise DiskSpaceError(
                    f"cannot reserve space for the store in the data dir {self.data_dir} ({e.strerror or e}); "
                    "nothing more was written: fix that and run the same command again to resume"
                ) from None
            raise DiskSpaceError(
                f"the disk holding the data dir {self.data_dir} filled up (another process writing to it?): pir "
                f"could not reserve {_mb(nbytes)} for its next store write ({_mb(free_bytes(self.data_dir))} free) "
                "and stopped; everything stored so far is intact: free some space and run the same command again "
                "to resume"
            ) from None
        self.size = nbytes

    def release(self) -> None:
        """Give the ballast's space back to the file system (right before a store write)."""
        if self._fd is not None and self.size:
            os.ftruncate(self._fd, 0)
        self.size = 0

    def close(self) -> None:
        """Release the space and remove the ballast file (idempotent)."""
        fd, self._fd = self._fd, None
        self.size = 0
        if fd is not None:
            os.close(fd)
            try:
                os.unlink(self.path)
            except OSError:
                pass
