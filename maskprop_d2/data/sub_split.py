"""Local train/val split of a YouTube-VIS training JSON (the public val/test GT is withheld).

Rule: a video goes to ``val_sub`` when ``sha1(key) mod 10000 < fraction x 10000``, where ``key``
is the folder of its first frame (``file_names[0]``'s directory, e.g. ``0043f083b5``): the same
split on every machine and Python version (no ``hash()``, no RNG), independent of the order of
videos in the JSON, and stable when videos are added. Default fraction: 0.1. Every video is in
exactly one of the two files; annotations follow their video; ``info``/``licenses``/
``categories`` are copied to both.

CLI (writes ``train_sub.json`` and ``val_sub.json`` next to the training JSON, or in ``--out``)::

    python -m maskprop_d2.data.sub_split datasets/ytvis_2019/train.json [--fraction 0.1] [--out DIR]

The registered splits ``ytvis_2019_train_sub`` / ``ytvis_2019_val_sub`` (and ``ytvis_2021_*``,
``ovis_*``) read these files, with frames from the training images.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile
from typing import Dict, Optional, Sequence, Tuple

__all__ = ["video_key", "in_val_sub", "split_ytvis_json", "write_sub_splits", "main"]

DEFAULT_FRACTION = 0.1


def video_key(video: Dict) -> str:
    """The folder of the video's first frame (its name in YouTube-VIS and OVIS)."""
    names = video.get("file_names") or []
    if not names:
        raise ValueError("video id {}: no file_names".format(video.get("id")))
    return os.path.dirname(names[0]).replace("\\", "/") or names[0]


def in_val_sub(key: str, fraction: float = DEFAULT_FRACTION) -> bool:
    """True when the video of ``key`` belongs to ``val_sub`` (see module docstring)."""
    h = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
    return h % 10000 < round(fraction * 10000)


def split_ytvis_json(data: Dict, fraction: float = DEFAULT_FRACTION) -> Tuple[Dict, Dict]:
    """(train_sub, val_sub) dicts of a YouTube-VIS JSON ``data``."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be in (0, 1), got {}".format(fraction))
    val_ids = {v["id"] for v in data["videos"] if in_val_sub(video_key(v), fraction)}
    rest = {k: v for k, v in data.items() if k not in ("videos", "annotations")}
    out = []
    for want_val in (False, True):
        d = dict(rest)
        d["videos"] = [v for v in data["videos"] if (v["id"] in val_ids) == want_val]
        if "annotations" in data:
            d["annotations"] = [
                a for a in data["annotations"] if (a["video_id"] in val_ids) == want_val
            ]
        out.append(d)
    return out[0], out[1]


def _write_json(obj, path: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_sub_splits(
    train_json: str, out_dir: Optional[str] = None, fraction: float = DEFAULT_FRACTION
) -> Tuple[str, str]:
    """Write ``train_sub.json`` and ``val_sub.json`` of ``train_json`` into ``out_dir`` (default:
    its folder; each file written whole or not at all). Returns the two paths."""
    with open(train_json) as f:
        data = json.load(f)
    train, val = split_ytvis_json(data, fraction)
    out_dir = out_dir or os.path.dirname(os.path.abspath(train_json))
    os.makedirs(out_dir, exist_ok=True)
    paths = (os.path.join(out_dir, "train_sub.json"), os.path.join(out_dir, "val_sub.json"))
    for obj, path in zip((train, val), paths, strict=True):
        _write_json(obj, path)
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("train_json", help="a YouTube-VIS / OVIS training JSON")
    p.add_argument("--fraction", type=float, default=DEFAULT_FRACTION,
                   help="share of the videos in val_sub (default %(default)s)")  # fmt: skip
    p.add_argument("--out", default=None, help="output folder (default: the JSON's folder)")
    a = p.parse_args(argv)
    train, val = write_sub_splits(a.train_json, a.out, a.fraction)
    for path in (train, val):
        with open(path) as f:
            d = json.load(f)
        print("{}: {} videos, {} annotations".format(
            path, len(d["videos"]), len(d.get("annotations", []))))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
