"""Reading weight and config files without running code they may carry.

* ``.pkl`` weights (detectron2 model zoo, Caffe2/Detectron1) are read by
  :func:`load_pickled_weights`, an unpickler that builds only plain data: dicts (also
  ``OrderedDict``), lists, tuples, strings, bytes, numbers, booleans, ``None`` and numpy arrays /
  scalars / dtypes. Any other global a pickle names (a function, a class, ``os.system``...) is
  refused before it is called: a :class:`WeightFileError` naming the file and the global.
* ``.pth`` checkpoints are read with ``torch.load(weights_only=True)`` (tensors and plain data).
* Config YAML is merged by :func:`merge_config_file` with ``yaml.safe_load`` only (``_BASE_``
  files too): a Python tag (``!!python/object/apply:...``) is a :class:`ConfigFileError` naming the
  file and line, and nothing in the file is run.

Rules and reasons: ``docs/reliability.md``.
"""
from __future__ import annotations

import io
import pickle
from typing import Any, Dict

__all__ = [
    "WeightFileError",
    "ConfigFileError",
    "load_pickled_weights",
    "load_torch_weights",
    "merge_config_file",
]


class WeightFileError(ValueError):
    """A weight file that cannot be loaded safely (the message names the file)."""


class ConfigFileError(ValueError):
    """A config file that is not plain YAML (the message names the file and line)."""


# (module, name) pairs a weight pickle may name. Everything else is refused.
_NUMPY_GLOBALS = {
    # ndarray pickles (protocols 0-4) and scalars, numpy 1.x and 2.x module names
    (mod, name)
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    # protocol 5 pickles of arrays
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_ALLOWED_GLOBALS = _NUMPY_GLOBALS | {
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how protocol 2 stores bytes (a str and a codec name -> bytes)
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("__builtin__", "bytes"),  # Python 2 names (model-zoo files were written by Python 2)
    ("__builtin__", "complex"),
}


class _WeightUnpickler(pickle.Unpickler):
    def __init__(self, f, path: str):
        super().__init__(f, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            if module == "__builtin__":
                module = "builtins"
            return super().find_class(module, name)
        raise WeightFileError(
            f"{self._path}: refusing to unpickle {module}.{name}: a weight file may hold only "
            "dicts, lists, tuples, strings, bytes, numbers and numpy arrays (this one names "
            "other code, which would run on loading)"
        )

    def persistent_load(self, pid):
        raise WeightFileError(f"{self._path}: refusing a pickle with persistent ids ({pid!r:.60})")


def load_pickled_weights(path: str, opener=open) -> Any:
    """Unpickle the weight file ``path`` admitting only plain data (see the module docstring);
    ``opener(path, "rb")`` opens it (e.g. detectron2's ``PathManager.open``)."""
    with opener(path, "rb") as f:
        data = f.read()
    try:
        return _WeightUnpickler(io.BytesIO(data), path).load()
    except WeightFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, RecursionError, UnicodeDecodeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise WeightFileError(
            f"{path}: not a readable weight pickle ({type(e).__name__}: {msg[:200]})"
        ) from None


def load_torch_weights(path: str, opener=open) -> Dict[str, Any]:
    """``torch.load`` of ``path`` on the CPU with ``weights_only=True`` (tensors and plain data
    only); a file that needs more is a :class:`WeightFileError` naming it."""
    import torch

    with opener(path, "rb") as f:
        try:
            return torch.load(f, map_location=torch.device("cpu"), weights_only=True)
        except pickle.UnpicklingError as e:
            first = str(e).strip().splitlines()
            detail = next((ln.strip() for ln in first if "GLOBAL" in ln or "Unsupported" in ln),
                          first[0] if first else "")
            raise WeightFileError(
                f"{path}: refusing to load: it holds more than tensors and plain data "
                f"({detail[:200]})"
            ) from None


def merge_config_file(cfg, path: str) -> None:
    """``cfg.merge_from_file(path)`` reading ``path`` (and its ``_BASE_`` files) as plain YAML
    only. Raises :class:`ConfigFileError` naming the file and line of a Python tag or a syntax
    error; nothing in the file is run."""
    import yaml

    try:
        cfg.merge_from_file(path, allow_unsafe=False)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = getattr(mark, "name", None) or path
        if where in ("<file>", "<unicode string>", "<byte string>"):
            where = path
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = (getattr(e, "problem", None) or str(e)).strip().splitlines()[0]
        if isinstance(e, yaml.constructor.ConstructorError):
            raise ConfigFileError(
                f"{where}{line}: {problem}; config files are read as plain YAML and may not "
                "hold Python tags (nothing in the file was run)"
            ) from None
        raise ConfigFileError(f"{where}{line}: not valid YAML ({problem})") from None
