"""Checkpoints that survive kills.

:class:`AtomicCheckpointer` is a ``DetectionCheckpointer`` whose

* ``save`` writes ``<name>.pth`` to a hidden temporary file in the same folder, flushes and
  fsyncs it, then renames it into place, so a kill (even ``kill -9``) at any moment leaves either
  the previous state or the whole new file, never a truncated or empty ``.pth``; the
  ``last_checkpoint`` tag is replaced the same way, after the checkpoint is in place;
* ``resume_or_load(path, resume=True)`` loads the latest *readable* checkpoint of ``save_dir``
  by the iteration in its name (``model_final`` > ``model_0001999`` > ...; never by file time),
  with a warning naming every file it could not read. If none is readable it stops with a
  ``CheckpointError`` naming them all.
* every file is read safely (:class:`SafeCheckpointer`: no pickle can run code), and inference
  callers check with :meth:`SafeCheckpointer.require_complete` that no parameter was left
  uninitialised.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import tempfile
from typing import Any, Dict, List

import torch
from detectron2.checkpoint import DetectionCheckpointer

from .utils.file_io import TMP_PREFIX, atomic_open

__all__ = [
    "AtomicCheckpointer",
    "CheckpointError",
    "IncompleteWeightsError",
    "SafeCheckpointer",
    "load_inference_weights",
    "use_atomic_checkpointer",
]

logger = logging.getLogger(__name__)

_ITER_NAME = re.compile(r"model_(\d+|final)\.pth")  # what PeriodicCheckpointer writes
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


class IncompleteWeightsError(RuntimeError):
    """Inference with weights that leave parameters of the model uninitialised (the message
    lists the missing groups and what would fit)."""


def _groups(keys, depth: int = 2) -> List[str]:
    """``["roi_heads.track_head.*", ...]``: the distinct ``depth``-component prefixes of
    ``keys``, in first-seen order."""
    out: Dict[str, None] = {}
    for k in keys:
        parts = k.split(".")
        out[".".join(parts[:depth]) + (".*" if len(parts) > depth else "")] = None
    return list(out)


class SafeCheckpointer(DetectionCheckpointer):
    """A ``DetectionCheckpointer`` that reads ``.pkl`` files with a restricted unpickler and
    ``.pth`` files with ``torch.load(weights_only=True)`` (no file can run code on loading:
    ``maskprop_d2.utils.safe_load``), and remembers what each ``load`` left uninitialised so that
    inference can refuse incomplete weights (:meth:`require_complete`)."""

    last_load = None  # (path, missing keys, checkpoint keys) of the latest load of weights

    def _load_file(self, filename: str) -> Dict[str, Any]:
        from detectron2.utils.file_io import PathManager

        from .utils.safe_load import WeightFileError, load_pickled_weights, load_torch_weights

        if filename.endswith(".pkl"):
            data = load_pickled_weights(filename, opener=PathManager.open)
            if not isinstance(data, dict):
                raise WeightFileError(f"{filename}: a weight pickle must hold a dict, "
                                      f"got {type(data).__name__}")
            if "model" in data and "__author__" in data:  # detectron2 model-zoo format
                self.logger.info("Reading a file from '{}'".format(data["__author__"]))
                return data
            # Caffe2 / Detectron1 model zoo (as detectron2 reads them)
            if "blobs" in data:
                data = data["blobs"]
            if not isinstance(data, dict):
                raise WeightFileError(f"{filename}: 'blobs' is not a dict")
            data = {k: v for k, v in data.items() if not str(k).endswith("_momentum")}
            return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}
        loaded = load_torch_weights(filename, opener=PathManager.open)
        if filename.endswith(".pyth"):  # pycls, as detectron2 reads it
            if not isinstance(loaded, dict) or not isinstance(loaded.get("model_state"), dict):
                raise WeightFileError(f"{filename}: a pycls .pyth file must hold 'model_state'")
            state = {k: v for k, v in loaded["model_state"].items()
                     if not k.endswith("num_batches_tracked")}
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        if not isinstance(loaded, dict):
            raise WeightFileError(f"{filename}: a checkpoint must hold a dict, "
                                  f"got {type(loaded).__name__}")
        if "model" not in loaded:
            loaded = {"model": loaded}
        return loaded

    def load(self, path: str, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        self._loading, self.last_load = path, None
        return super().load(path, *args, **kwargs)

    def _load_model(self, checkpoint: Any):
        state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            from .utils.safe_load import WeightFileError

            raise WeightFileError(f"{getattr(self, '_loading', '?')}: its 'model' entry is not "
                                  "a dict of parameter name -> array")
        import numpy as np

        for k, v in state.items():
            if not isinstance(v, (np.ndarray, torch.Tensor)):
                from .utils.safe_load import WeightFileError

                raise WeightFileError(f"{getattr(self, '_loading', '?')}: 'model' entry {k!r:.80} "
                                      f"is a {type(v).__name__}, not an array")
        ckpt_keys = [str(k) for k in state]
        incompatible = super()._load_model(checkpoint)
        missing = [k for k in incompatible.missing_keys if not k.endswith("num_batches_tracked")]
        self.last_load = (getattr(self, "_loading", ""), missing, ckpt_keys)
        return incompatible

    def require_complete(self, config_file: str = "") -> None:
        """Raise :class:`IncompleteWeightsError` unless the latest ``load`` initialised every
        parameter and buffer of the model (``num_batches_tracked`` aside). ``config_file``: the
        config the model was built from (named in the message)."""
        cfg_txt = f" built from {config_file}" if config_file else ""
        if self.last_load is None:
            raise IncompleteWeightsError(
                f"no weights were loaded (MODEL.WEIGHTS is empty) for the model{cfg_txt}: "
                "inference needs a trained checkpoint (set MODEL.WEIGHTS)"
            )
        path, missing, ckpt_keys = self.last_load
        if not missing:
            return
        model_keys = [k for k in self.model.state_dict() if not k.endswith("num_batches_tracked")]
        missing_set = set(missing)
        loaded = [k for k in model_keys if k not in missing_set]
        ckpt_groups = set(_groups(ckpt_keys))
        if not loaded:
            hint = (f"{path} shares no parameter name with this model: it is not a checkpoint of "
                    "this architecture (a torchvision or other state dict is not); train one with "
                    "train_net.py")
        elif "roi_heads.track_head.*" in _groups(missing):
            hint = (f"{path} has no tracking head: it fits a MaskProp config (e.g. "
                    "configs/synthetic/maskprop_tiny.yaml); the MaskTrack config needs weights "
                    "trained with it (train_net.py --config-file .../masktrack_*.yaml)")
        elif ("roi_heads.mask_prop_head.*" not in ckpt_groups
              and "roi_heads.mask_prop_head.*" in _groups(missing)):
            hint = (f"{path} has no propagation head (a detector-only checkpoint?): fine-tune it "
                    "with train_net.py first (training starts from partial weights)")
        else:
            folder_cfg = os.path.join(os.path.dirname(path), "config.yaml")
            hint = ("use the config these weights were trained with"
                    + (f" ({folder_cfg})" if os.path.isfile(folder_cfg) else ""))
        groups = _groups(missing)
        if len(groups) > 6:  # e.g. nothing loaded: the top-level modules say enough
            groups = _groups(missing, depth=1)
        raise IncompleteWeightsError(
            f"{path} leaves {len(missing)} of {len(model_keys)} parameters/buffers of the "
            f"model{cfg_txt} uninitialised ({', '.join(groups)}); inference with "
            f"them would use random values. {hint}"
        )


def load_inference_weights(model, path: str, config_file: str = "") -> SafeCheckpointer:
    """Load ``path`` into ``model`` for inference (safe loading) and raise
    :class:`IncompleteWeightsError` if it leaves any parameter uninitialised."""
    checkpointer = SafeCheckpointer(model)
    checkpointer.load(path)
    checkpointer.require_complete(config_file)
    return checkpointer


class AtomicCheckpointer(SafeCheckpointer):
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
        """Checkpoint files of ``save_dir`` to resume from, best first, by the iteration in
        their names (``model_final.pth`` last of all, then ``model_0001999.pth``, ...), never by
        file time (a copy reorders times); at equal rank the tagged one (``last_checkpoint``)
        first; files named otherwise after those, newest first."""
        files = [f for f in self.get_all_checkpoint_files() if f.endswith(".pth")]
        tagged = None
        if self.has_checkpoint():
            try:
                tagged = os.path.abspath(self.get_checkpoint_file())
            except OSError:
                tagged = None

        def rank(f):
            m = _ITER_NAME.fullmatch(os.path.basename(f))
            it = -1 if m is None else (float("inf") if m.group(1) == "final" else int(m.group(1)))
            return (it, os.path.abspath(f) == tagged, os.path.getmtime(f) if it < 0 else 0.0)

        return sorted(files, key=rank, reverse=True)

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
