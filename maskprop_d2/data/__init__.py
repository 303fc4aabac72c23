"""Video data: YouTube-VIS loading/validation, registration of built-in and synthetic splits.

The names below are imported from their modules on first use, and the first use registers the
built-in splits (:mod:`.builtin`, lazily: nothing is read from disk). Importing the package
itself imports nothing heavy, so that the synthetic generator (``python -m
maskprop_d2.data.synthetic``: numpy, OpenCV and pycocotools only) runs without torch.
"""

import importlib

__all__ = [
    "ClipDatasetMapper",
    "VideoInferenceMapper",
    "VideoFrames",
    "build_clip_train_loader",
    "build_video_test_loader",
    "get_video_dataset_dicts",
    "load_ytvis_json",
    "register_ytvis_instances",
    "register_all_ytvis",
    "register_synthetic_ytvis",
    "DEFAULT_SYNTHETIC_ROOT",
    "YTVIS_2019_CATEGORIES",
    "YTVIS_2021_CATEGORIES",
    "OVIS_CATEGORIES",
]

_MODULE_OF = {
    "ClipDatasetMapper": ".clip_mapper",
    "VideoInferenceMapper": ".clip_mapper",
    "VideoFrames": ".clip_mapper",
    "build_clip_train_loader": ".build",
    "build_video_test_loader": ".build",
    "get_video_dataset_dicts": ".build",
    "load_ytvis_json": ".ytvis",
    "register_ytvis_instances": ".ytvis",
    "register_all_ytvis": ".builtin",
    "register_synthetic_ytvis": ".builtin",
    "DEFAULT_SYNTHETIC_ROOT": ".synthetic",
    "YTVIS_2019_CATEGORIES": ".builtin",
    "YTVIS_2021_CATEGORIES": ".builtin",
    "OVIS_CATEGORIES": ".builtin",
}


def __getattr__(name):
    if name in _MODULE_OF:
        importlib.import_module(".builtin", __name__)  # registers the built-in splits
        value = getattr(importlib.import_module(_MODULE_OF[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))
