"""Checkpoints that survive kills.

:class:`AtomicCheckpointer` is a ``DetectionCheckpointer`` whose

* ``save`` writes ``<name>.pth`` to a hidden temporary file in the same folder, flushes and
  fsyncs it, then renames it into place, so a kill (even ``kill -9``) at any moment leaves either
  the previous state or the whole new file, never a truncated or empty ``.pth``; the
  ``last_checkpoint`` tag is replaced the same way, after the checkpoint is in place;
* ``resume_or_load(path, resume=True)`` loads the newest *readable* checkpoint of ``save_dir``:
  the tagged one, else the other ``.pth`` files newest first, with a warning naming every file
  it could not read. If none is readable it stops with a ``CheckpointError`` naming them all.
"""
from __future__ import annotations

import glob
import logging
import os
import tempfile
from typing import Any, Dict, List

from detectron2.checkpoint import DetectionCheckpointer

from .utils.file_io import TMP_PREFIX, atomic_open

__all__ = ["AtomicCheckpointer", "CheckpointError", "use_atomic_checkpointer"]

logger = logging.getLogger(__name__)

_TMP_PREFIX = TMP_PREFIX  # what atomic_open names its temporaries: hidden, no ".pth" suffix


class CheckpointError(RuntimeError):
    """No readable checkpoint to resume from (the message names every file tried)."""


class _AtomicWritePathManager:
    """A checkpointer's path manager whose writes of local files are atomic
    (:func:`maskprop_d2.utils.file_io.atomic_open`); every other call goes to the wrapped one."""

    def __init__(self, path_manager):
        self._path_manager = path_manager

    def open(self, path: str, mode: str = "r", **kwargs):
        if mode in ("w", "wb") and "://" not in path:
            return atomic_open(path, mode)
        return self._path_manager.open(path, mode, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._path_manager, name)


class AtomicCheckpointer(DetectionCheckpointer):
    """See the module docstring. Same constructor as ``DetectionCheckpointer``; ``save`` and the
    ``last_checkpoint`` tag are fvcore's, only their files are written atomically (through the
    path manager)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.path_manager = _AtomicWritePathManager(self.path_manager)

    def save(self, name: str, **kwargs: Any) -> None:
        if os.path.basename(name) != name:  # fvcore asserts this; a clear error instead
            raise ValueError(f"checkpoint name {name!r} must not contain a path separator")
        super().save(name, **kwargs)

    def remove_stale_temporaries(self) -> List[str]:
        """Delete temporary files a killed ``save`` left in ``save_dir``; returns their paths."""
        stale = sorted(glob.glob(os.path.join(glob.escape(self.save_dir), _TMP_PREFIX + "*")))
        for p in stale:
            try:
                os.unlink(p)
            except OSError:
                pass
        if stale:
            logger.info("removed %d temporary file(s) of an interrupted save: %s", len(stale),
                        ", ".join(stale))
        return stale

    def resume_candidates(self) -> List[str]:
        """Checkpoint files of ``save_dir`` to resume from, best first: the tagged one (if it
        exists), then every other ``.pth`` newest first (modification time)."""
        files = [f for f in self.get_all_checkpoint_files() if f.endswith(".pth")]
        files.sort(key=lambda f: os.path.getmtime(f), reverse=True)
        if self.has_checkpoint():
            try:
                tagged = self.get_checkpoint_file()
            except OSError:
                tagged = None
            if tagged and os.path.isfile(tagged):
                files = [tagged] + [f for f in files if os.path.abspath(f) !=
                                    os.path.abspath(tagged)]
        return files

    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        if not (resume and self.save_dir and os.path.isdir(self.save_dir)):
            return super().resume_or_load(path, resume=resume)
        if self.save_to_disk:  # the main process only
            self.remove_stale_temporaries()
        candidates = self.resume_candidates()
        if not candidates:
            if self.has_checkpoint():
                raise CheckpointError(
                    f"cannot resume: {os.path.join(self.save_dir, 'last_checkpoint')} names a "
                    f"checkpoint that does not exist, and {self.save_dir} has no other .pth file"
                )
            return super().resume_or_load(path, resume=False)
        failures = []
        for f in candidates:
            try:
                checkpoint = self.load(f)
            except Exception as e:  # noqa: BLE001  (any unreadable file: try the next one)
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                failures.append(f"{f} ({type(e).__name__}: {msg})")
                logger.warning("cannot read checkpoint %s: %s", f, msg)
                continue
            if failures:
                logger.warning(
                    "resumed from %s, the newest readable checkpoint; skipped unreadable: %s",
                    f, "; ".join(failures),
                )
            tagged = self.get_checkpoint_file() if self.has_checkpoint() else None
            if self.save_to_disk and f != tagged:
                self.tag_last_checkpoint(os.path.basename(f))
            return checkpoint
        raise CheckpointError(
            "cannot resume: no checkpoint in {} is readable:\n  {}\nDelete them (or resume=False) "
            "to start from MODEL.WEIGHTS.".format(self.save_dir, "\n  ".join(failures))
        )



def use_atomic_checkpointer(trainer) -> AtomicCheckpointer:
    """Replace ``trainer.checkpointer`` (a detectron2 ``DefaultTrainer``'s) by an
    :class:`AtomicCheckpointer` with the same model, folder and checkpointables. Call it before
    the hooks are built (e.g. at the start of an overridden ``build_hooks``)."""
    old = trainer.checkpointer
    new = AtomicCheckpointer(old.model, old.save_dir, save_to_disk=old.save_to_disk)
    new.checkpointables = dict(old.checkpointables)
    trainer.checkpointer = new
    return new


def check_output_dir(path: str) -> None:
    """Create ``path`` if needed and check that a file can be written in it; raise ``OSError``
    naming it otherwise (so training stops before the model and the data are built)."""
    if not path:
        return
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=_TMP_PREFIX + "write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OSError(
            f"OUTPUT_DIR {path} is not a writable folder ({e.strerror or e}); "
            "set OUTPUT_DIR to one that is"
        ) from None
