"""Publishing files atomically: write a hidden temporary file next to the target, then rename.

A reader (or a crash at any moment) sees either the old file or the complete new one, never a
partial write. Standard library only.
"""

import os
import tempfile

__all__ = ["publish_file", "atomic_write_bytes"]


def publish_file(tmp: str, path: str) -> None:
    """Rename a finished temporary file onto ``path`` with the usual permissions.

    ``tempfile.mkstemp`` creates files readable by their owner only; the published file gets
    ``0o666`` less the process umask, as ``open(path, "w")`` would have given it.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename);
    creates the folder if needed. On any error the temporary file is removed."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish_file(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
