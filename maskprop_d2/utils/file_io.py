"""Publishing files atomically: write a hidden temporary file next to the target, then rename.

A reader (or a crash at any moment, even ``kill -9``) sees either the old file or the complete
new one, never a partial write. The one implementation the package, the checkpointer, the
evaluator CLI, the demo and the tools write their outputs with. Standard library only.
"""

import contextlib
import os
import tempfile
from typing import IO, Iterator

__all__ = ["TMP_PREFIX", "publish_file", "atomic_open", "atomic_write_bytes"]

# Temporary files are hidden and keep no suffix of their own (".pth", ".json"), so listings that
# look for finished files pass them over.
TMP_PREFIX = ".tmp-"


def publish_file(tmp: str, path: str) -> None:
    """Rename a finished temporary file onto ``path`` with the usual permissions.

    ``tempfile.mkstemp`` creates files readable by their owner only; the published file gets
    ``0o666`` less the process umask, as ``open(path, "w")`` would have given it.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """``with atomic_open(path, "w") as f:`` writes ``f`` to ``path`` whole or not at all.

    The file object is a temporary file ``.tmp-<name>.<random>`` in ``path``'s folder (created if
    needed); when the block ends normally it is flushed, fsynced and renamed onto ``path``. On
    any exception (``KeyboardInterrupt``, a signal that raises) the temporary file is removed
    and ``path`` is untouched.

    Args:
        mode: a write mode, "w" or "wb" (text or binary).
        kwargs: passed to ``open`` (e.g. ``encoding``).
    """
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open writes a new file: mode 'w' or 'wb', got {!r}".format(mode))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + os.path.basename(path) + ".", dir=folder)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        publish_file(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_open`); creates the folder if
    needed."""
    with atomic_open(path, "wb") as f:
        f.write(data)
