"""Built-in YouTube-VIS / OVIS splits and the synthetic dataset, registered at import (lazily).

Registration only records names, paths and class metadata; nothing is read from disk until
``DatasetCatalog.get``. As in detectron2, it runs only when this module is imported as
``maskprop_d2.data.builtin`` (not when the file is executed or imported under another name).

Layout under ``$DETECTRON2_DATASETS`` (default ``datasets``)::

    ytvis_2019/{train,valid,test}.json   ytvis_2019/{train,valid,test}/JPEGImages/
    ytvis_2021/{train,valid,test}.json   ytvis_2021/{train,valid,test}/JPEGImages/
    ovis/annotations_{train,valid,test}.json   ovis/{train,valid,test}/
    synthetic_ytvis/{train,valid}.json   synthetic_ytvis/{train,valid}/JPEGImages/
                                         (or $MASKPROP_SYNTHETIC_ROOT; made by ``make data`` or
                                         ``python -m maskprop_d2.data.synthetic --out DIR``)
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog

from .synthetic import DEFAULT_SYNTHETIC_ROOT
from .ytvis import distinct_colors, load_ytvis_json, register_ytvis_instances

__all__ = [
    "YTVIS_2019_CATEGORIES",
    "YTVIS_2021_CATEGORIES",
    "OVIS_CATEGORIES",
    "BUILTIN_SPLITS",
    "register_all_ytvis",
    "register_synthetic_ytvis",
]

logger = logging.getLogger(__name__)


def _categories(names: List[str]) -> List[Dict]:
    colors = distinct_colors(len(names))
    return [{"id": i + 1, "name": n, "color": colors[i]} for i, n in enumerate(names)]


YTVIS_2019_CATEGORIES = _categories(
    "person giant_panda lizard parrot skateboard sedan ape dog snake monkey hand rabbit duck cat "
    "cow fish train horse turtle bear motorbike giraffe leopard fox deer owl surfboard airplane "
    "truck zebra tiger elephant snowboard boat shark mouse frog eagle earless_seal "
    "tennis_racket".split()
)
YTVIS_2021_CATEGORIES = _categories(
    "airplane bear bird boat car cat cow deer dog duck earless_seal elephant fish flying_disc fox "
    "frog giant_panda giraffe horse leopard lizard monkey motorbike mouse parrot person rabbit "
    "shark skateboard snake snowboard squirrel surfboard tennis_racket tiger train truck turtle "
    "whale zebra".split()
)
OVIS_CATEGORIES = _categories(
    "Person Bird Cat Dog Horse Sheep Cow Elephant Bear Zebra Giraffe Poultry Giant_panda Lizard "
    "Parrot Monkey Rabbit Tiger Fish Turtle Bicycle Motorcycle Airplane Boat Vehicle".split()
)

# name -> (categories, json file, image root), paths relative to $DETECTRON2_DATASETS
BUILTIN_SPLITS: Dict[str, tuple] = {}
for _ds in ("ytvis_2019", "ytvis_2021"):
    _cats = YTVIS_2019_CATEGORIES if _ds == "ytvis_2019" else YTVIS_2021_CATEGORIES
    for _split, _dir in (("train", "train"), ("val", "valid"), ("test", "test")):
        BUILTIN_SPLITS[f"{_ds}_{_split}"] = (
            _cats, f"{_ds}/{_dir}.json", f"{_ds}/{_dir}/JPEGImages"
        )
for _split, _dir in (("train", "train"), ("val", "valid"), ("test", "test")):
    BUILTIN_SPLITS[f"ovis_{_split}"] = (
        OVIS_CATEGORIES, f"ovis/annotations_{_dir}.json", f"ovis/{_dir}"
    )
# Local sub-splits of each training set (``python -m maskprop_d2.data.sub_split TRAIN_JSON``
# writes train_sub.json / val_sub.json next to it): frames from the training images.
for _ds, _train_json, _train_images in (
    ("ytvis_2019", "ytvis_2019/train.json", "ytvis_2019/train/JPEGImages"),
    ("ytvis_2021", "ytvis_2021/train.json", "ytvis_2021/train/JPEGImages"),
    ("ovis", "ovis/annotations_train.json", "ovis/train"),
):
    for _sub in ("train_sub", "val_sub"):
        BUILTIN_SPLITS[f"{_ds}_{_sub}"] = (
            BUILTIN_SPLITS[f"{_ds}_train"][0],
            os.path.join(os.path.dirname(_train_json), f"{_sub}.json"),
            _train_images,
        )


def _metadata(categories: List[Dict]) -> Dict:
    return {
        "thing_classes": [c["name"] for c in categories],
        "thing_colors": [list(c["color"]) for c in categories],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(categories)},
    }


def _datasets_root() -> str:
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def register_all_ytvis(root: Optional[str] = None) -> None:
    """Register all ``BUILTIN_SPLITS`` under ``root`` (names already registered are skipped)."""
    root = _datasets_root() if root is None else root
    registered = set(DatasetCatalog.list())
    for name, (cats, json_file, image_root) in BUILTIN_SPLITS.items():
        if name in registered:
            continue
        register_ytvis_instances(
            name, _metadata(cats), os.path.join(root, json_file), os.path.join(root, image_root)
        )


def _synthetic_metadata() -> Dict:
    """Class metadata of the synthetic generator, without importing or generating anything."""
    from .synthetic_classes import SYNTHETIC_CATEGORIES, SYNTHETIC_COLORS

    cats = sorted(SYNTHETIC_CATEGORIES, key=lambda c: c["id"])
    colors = SYNTHETIC_COLORS if len(SYNTHETIC_COLORS) == len(cats) else distinct_colors(len(cats))
    return {
        "thing_classes": [c["name"] for c in cats],
        "thing_colors": [list(c) for c in colors],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }


def _load_synthetic(root: str, split_dir: str, name: str):
    json_file = os.path.join(root, f"{split_dir}.json")
    if not os.path.isfile(json_file):
        raise FileNotFoundError(
            f"dataset '{name}': {json_file} not found. The synthetic dataset is not generated "
            f"automatically; make it with `make data` (default location) or "
            f"`python -m maskprop_d2.data.synthetic --out {root}`"
        )
    return load_ytvis_json(
        os.path.join(root, f"{split_dir}.json"),
        os.path.join(root, split_dir, "JPEGImages"),
        name,
    )


def register_synthetic_ytvis(
    root: Optional[str] = None, prefix: str = "synthetic_ytvis"
) -> List[str]:
    """Register ``{prefix}_train`` / ``{prefix}_val`` from ``root`` (default:
    ``DEFAULT_SYNTHETIC_ROOT()``).

    Lazy: the data must exist when ``DatasetCatalog.get`` is called (``make data``, or ``python -m
    maskprop_d2.data.synthetic --out ROOT``); a missing file is a ``FileNotFoundError`` naming
    those commands. Re-registering a name with the same root is a no-op; with another root it
    raises.
    Returns the two dataset names.
    """
    root = DEFAULT_SYNTHETIC_ROOT() if root is None else os.path.expanduser(root)
    names = []
    meta = None
    for split, split_dir in (("train", "train"), ("val", "valid")):
        name = f"{prefix}_{split}"
        names.append(name)
        json_file = os.path.join(root, f"{split_dir}.json")
        if name in DatasetCatalog.list():
            old = MetadataCatalog.get(name).get("json_file")
            if old != json_file:
                raise ValueError(
                    f"dataset '{name}' is already registered with json_file={old}; "
                    f"use another prefix for root {root}"
                )
            continue
        if meta is None:
            meta = _synthetic_metadata()
        DatasetCatalog.register(
            name,
            lambda root=root, d=split_dir, n=name: _load_synthetic(root, d, n),
        )
        MetadataCatalog.get(name).set(
            json_file=json_file,
            image_root=os.path.join(root, split_dir, "JPEGImages"),
            evaluator_type="ytvis",
            **meta,
        )
    return names


if __name__.endswith(".builtin"):
    # Register the built-in splits (lazily), as detectron2's data/datasets/builtin.py does.
    register_all_ytvis()
    register_synthetic_ytvis()
