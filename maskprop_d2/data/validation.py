"""Training-data checks that run before iteration 0.

* :class:`DatasetValidationError` (a ``ValueError``): the problems of one dataset, the first
  :data:`MAX_LISTED` listed one per line plus a count of the rest. It carries the records that
  have no problem (``valid_records``) so that a caller that opted in (``DATASETS.DROP_INVALID``)
  can train on those and log what was dropped; nothing is dropped silently.
* :func:`read_json_file`: ``json.load`` whose errors name the file and the position (line,
  column, character offset; the byte offset for non-UTF-8 input).
* :func:`frame_file_problems`: one ``os.stat`` per listed frame file.

The per-annotation checks (RLE size and counts, polygons) live in
:func:`maskprop_d2.data.ytvis.load_ytvis_json`, which raises this error.
"""
from __future__ import annotations

import json
import logging
import os
import stat
from typing import Any, Dict, List, Optional, Sequence

__all__ = [
    "DatasetValidationError",
    "MAX_LISTED",
    "Problem",
    "format_problems",
    "frame_file_problems",
    "read_json_file",
    "drop_or_raise",
]

logger = logging.getLogger(__name__)

MAX_LISTED = 10  # problems listed in an error message; the rest are counted


class Problem:
    """One problem of one video: ``video_id`` (None when no video can be named) and a message
    that already names the file, the video / annotation id, the frame and the field."""

    __slots__ = ("video_id", "message")

    def __init__(self, video_id: Any, message: str):
        self.video_id = video_id
        self.message = message

    def __repr__(self) -> str:
        return f"Problem(video_id={self.video_id!r}, {self.message!r})"


def format_problems(source: str, problems: Sequence[Problem], limit: int = MAX_LISTED) -> str:
    head = [f"  - {p.message}" for p in problems[:limit]]
    rest = len(problems) - len(head)
    lines = [f"{source}: {len(problems)} problem(s) in the dataset:"] + head
    if rest > 0:
        lines.append(f"  ... and {rest} more problem(s)")
    return "\n".join(lines)


class DatasetValidationError(ValueError):
    """Problems found in a dataset before training; see the module docstring."""

    def __init__(
        self,
        source: str,
        problems: Sequence[Problem],
        valid_records: Optional[List[Dict[str, Any]]] = None,
    ):
        self.source = source
        self.problems = list(problems)
        self.valid_records = valid_records
        hint = (
            "\nFix the data, or set DATASETS.DROP_INVALID True to train without the videos "
            "listed (they are logged)."
            if valid_records is not None
            else ""
        )
        super().__init__(format_problems(source, self.problems) + hint)


def read_json_file(path: str) -> Any:
    """Parse a JSON file; malformed JSON or non-UTF-8 bytes raise ``ValueError`` naming the file
    and the position."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{path}: not valid UTF-8 at byte {e.start} (line {line}): {e.reason}"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}: malformed JSON at line {e.lineno} column {e.colno} (char {e.pos}): {e.msg}"
        ) from None
    except RecursionError:
        raise ValueError(f"{path}: malformed JSON: nested too deeply") from None


def frame_file_problems(
    records: Sequence[Dict[str, Any]], source: str, decode: bool = False, image_format: str = "BGR"
) -> List[Problem]:
    """A problem for every listed frame file that does not exist or is not a regular file
    (one ``os.stat`` per frame); with ``decode`` (``DATASETS.VERIFY_FRAMES: "decode"``) also for
    every frame that cannot be decoded or whose size is not the video's."""
    problems: List[Problem] = []
    for rec in records:
        vid = rec.get("video_id")
        for f, fn in enumerate(rec.get("file_names", ())):
            if decode and not problems_of_decoding(problems, rec, f, fn, source, image_format):
                continue
            try:
                st = os.stat(fn)
            except OSError as e:
                problems.append(
                    Problem(
                        vid,
                        f"{source}: video id {vid}, frame {f}, field 'file_names': "
                        f"frame file {fn} cannot be read ({e.strerror or e})",
                    )
                )
                continue
            if not stat.S_ISREG(st.st_mode):
                problems.append(
                    Problem(
                        vid,
                        f"{source}: video id {vid}, frame {f}, field 'file_names': "
                        f"{fn} is not a regular file",
                    )
                )
    return problems


def problems_of_decoding(problems, rec, f, fn, source, image_format) -> bool:
    """Decode frame ``f`` (file ``fn``) of ``rec`` as training would; append a problem and
    return False if it cannot be decoded or has the wrong size, else return True."""
    from .clip_mapper import FrameReadError, _read_frame

    vid = rec.get("video_id")
    try:
        _read_frame(fn, image_format, rec["height"], rec["width"], vid)
    except FrameReadError as e:
        if os.path.exists(fn) and os.path.isfile(fn):  # missing files: the stat check says so
            problems.append(Problem(vid, f"{source}: video id {vid}, frame {f}, field "
                                         f"'file_names': {e}"))
            return False
    return True


def drop_or_raise(
    records: List[Dict[str, Any]],
    problems: Sequence[Problem],
    source: str,
    drop_invalid: bool,
) -> List[Dict[str, Any]]:
    """``records`` when there is no problem; else raise :class:`DatasetValidationError` or, with
    ``drop_invalid``, return the records of the videos without problems and log (WARNING) each
    dropped video with its problems."""
    if not problems:
        return records
    bad = {p.video_id for p in problems if p.video_id is not None}
    valid = [r for r in records if r.get("video_id") not in bad]
    if not drop_invalid:
        raise DatasetValidationError(source, problems, valid)
    log_dropped(source, problems, len(records) - len(valid))
    return valid


def log_dropped(source: str, problems: Sequence[Problem], num_dropped_videos: int) -> None:
    logger.warning(
        "DATASETS.DROP_INVALID: %s: dropped %d video(s) (and unattached annotations) with "
        "%d problem(s):\n%s",
        source,
        num_dropped_videos,
        len(problems),
        "\n".join(f"  - {p.message}" for p in problems),
    )
