"""Data loaders for video datasets: clip loader for training, one-video-at-a-time for testing."""

import itertools
import logging
import random
import time

import torch.utils.data
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
from detectron2.data.common import DatasetFromList, MapDataset
from detectron2.data.samplers import InferenceSampler, TrainingSampler
from detectron2.utils.comm import get_world_size

from .clip_mapper import ClipDatasetMapper, FrameReadError, VideoInferenceMapper
from .validation import DatasetValidationError, drop_or_raise, frame_file_problems, log_dropped

__all__ = [
    "get_video_dataset_dicts",
    "build_clip_train_loader",
    "build_video_test_loader",
    "SkippedClipsError",
]

logger = logging.getLogger(__name__)


def _dataset_source(name: str) -> str:
    json_file = MetadataCatalog.get(name).get("json_file")
    return f"dataset {name!r} ({json_file})" if json_file else f"dataset {name!r}"


def get_video_dataset_dicts(
    names,
    filter_empty: bool = True,
    check_files: bool = False,
    drop_invalid: bool = False,
    decode_frames: bool = False,
    image_format: str = "BGR",
):
    """Video records of the named datasets, concatenated.

    Args:
        filter_empty: drop videos that have no annotated object in any frame (training).
        check_files: check that every listed frame file exists (one ``stat`` per frame), so a
            missing frame stops the run before iteration 0, not at a random step.
        drop_invalid: drop the videos with problems (invalid annotations, missing frame files)
            and log them, instead of raising ``DatasetValidationError`` (``DATASETS.DROP_INVALID``).
        decode_frames: with ``check_files``, also decode every frame (``image_format``) and
            check its size (``DATASETS.VERIFY_FRAMES: "decode"``).
    """
    if isinstance(names, str):
        names = [names]
    if len(names) == 0:
        raise ValueError("no dataset names given (DATASETS.TRAIN / DATASETS.TEST is empty)")
    dicts = []
    for name in names:
        try:
            records = DatasetCatalog.get(name)
        except DatasetValidationError as e:
            if not drop_invalid or e.valid_records is None:
                raise
            log_dropped(e.source, e.problems, len({p.video_id for p in e.problems} - {None}))
            records = e.valid_records
        if check_files:
            t0 = time.perf_counter()
            source = _dataset_source(name)
            problems = frame_file_problems(records, source, decode_frames, image_format)
            records = drop_or_raise(records, problems, source, drop_invalid)
            logger.info(
                "%s: %d frame files %s in %.2f s",
                name, sum(len(r["file_names"]) for r in records),
                "decoded" if decode_frames else "checked", time.perf_counter() - t0,
            )
        if len(records) == 0:
            raise ValueError("dataset {!r} is empty".format(name))
        dicts.append(records)
    dicts = list(itertools.chain.from_iterable(dicts))
    if filter_empty:
        before = len(dicts)
        dicts = [r for r in dicts if any(len(objs) for objs in r.get("annotations", []))]
        if before != len(dicts):
            logger.info("removed %d videos without annotations", before - len(dicts))
        if not dicts:
            raise ValueError("datasets {} have no annotated video to train on".format(names))
    return dicts


class SkippedClipsError(RuntimeError):
    """Too many training clips skipped for unreadable frames (the message names files)."""


_MAX_TRIES = 100  # clips tried in a row for one sample before the loader gives up


class _SkippingMapDataset(torch.utils.data.Dataset):
    """``mapper(dicts[i])``; a clip whose frame cannot be decoded (``FrameReadError``) is replaced
    by another random video's clip, and the returned clip lists what was skipped on its way
    under ``"skipped_frames"`` (``[(file, message), ...]``; counted by :class:`_SkipAccounting`).
    """

    def __init__(self, dicts, mapper):
        self._dicts = DatasetFromList(dicts, copy=False)
        self._mapper = mapper
        self._rng = random.Random(42)

    def __len__(self):
        return len(self._dicts)

    def __getitem__(self, idx):
        skipped = []
        cur = idx
        for _ in range(_MAX_TRIES):
            try:
                clip = self._mapper(self._dicts[cur])
            except (FrameReadError, FileNotFoundError) as e:  # gone since the check: skip too
                name = getattr(e, "file_name", None) or e.filename
                skipped.append((name, str(e) if isinstance(e, FrameReadError) else
                                f"frame {name} is gone ({e.strerror})"))
                cur = self._rng.randrange(len(self._dicts))
                continue
            clip["skipped_frames"] = skipped
            return clip
        raise SkippedClipsError(
            "{} clips in a row had unreadable frames (last: {}); check the frame files "
            "(DATASETS.VERIFY_FRAMES \"decode\" lists them all before training)".format(
                _MAX_TRIES, skipped[-1][1])
        )


class _SkipAccounting:
    """Iterates a clip loader; for each clip skipped on the way (``"skipped_frames"``) logs a
    warning naming the file, counts it in the event storage (``data/skipped_clips``, while
    training) and raises :class:`SkippedClipsError` when more than ``max_fraction`` of the clips
    drawn so far were skipped (counted over at least 100 draws: up to ``100 * max_fraction``
    skips are tolerated among the first 100)."""

    def __init__(self, loader, max_fraction: float):
        self.loader = loader
        self.max_fraction = float(max_fraction)
        self.drawn = 0
        self.skipped = 0

    def __iter__(self):
        for batch in self.loader:
            for clip in batch:
                skipped = clip.pop("skipped_frames", ())
                self.drawn += 1 + len(skipped)
                self.skipped += len(skipped)
                for _file, msg in skipped:
                    logger.warning("skipped a training clip: %s", msg)
                if skipped:
                    self._put_scalar()
                    if self.skipped > self.max_fraction * max(self.drawn, 100):
                        raise SkippedClipsError(
                            "stopping: {} of {} training clips drawn were skipped for unreadable "
                            "frames, more than DATASETS.MAX_SKIPPED_CLIP_FRACTION = {:g} (last: "
                            "{}); fix or remove those frames (DATASETS.VERIFY_FRAMES \"decode\" "
                            "lists them all)".format(self.skipped, self.drawn, self.max_fraction,
                                                    skipped[-1][1])
                        )
            yield batch

    def _put_scalar(self):
        from detectron2.utils.events import get_event_storage

        try:
            storage = get_event_storage()
        except AssertionError:  # not inside a training loop
            return
        storage.put_scalar("data/skipped_clips", self.skipped, smoothing_hint=False)


def build_clip_train_loader(cfg, mapper=None):
    """Infinite loader of clip dicts (see ClipDatasetMapper), SOLVER.IMS_PER_BATCH clips a batch.

    Frame files are checked before iteration 0 (``DATASETS.VERIFY_FRAMES``). A clip whose frame
    still cannot be decoded, or has the wrong size, is skipped with a warning naming the file
    (counted as ``data/skipped_clips``); more than ``DATASETS.MAX_SKIPPED_CLIP_FRACTION`` of the
    clips skipped stops the run with :class:`SkippedClipsError`."""
    verify = cfg.DATASETS.get("VERIFY_FRAMES", "exists")
    dicts = get_video_dataset_dicts(
        cfg.DATASETS.TRAIN,
        filter_empty=True,
        check_files=True,
        drop_invalid=cfg.DATASETS.get("DROP_INVALID", False),
        decode_frames=verify == "decode",
        image_format=cfg.INPUT.FORMAT,
    )
    mapper = mapper if mapper is not None else ClipDatasetMapper(cfg, is_train=True)
    loader = build_detection_train_loader(
        _SkippingMapDataset(dicts, mapper),
        mapper=None,
        sampler=TrainingSampler(len(dicts)),
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )
    return _SkipAccounting(loader, cfg.DATASETS.get("MAX_SKIPPED_CLIP_FRACTION", 0.05))


def _identity(batch):
    return batch


def build_video_test_loader(cfg, dataset_name, mapper=None):
    """Loader of video dicts (frames read lazily), one video a batch, split across processes."""
    dicts = get_video_dataset_dicts([dataset_name], filter_empty=False)
    mapper = mapper if mapper is not None else VideoInferenceMapper(cfg, is_train=False)
    dataset = MapDataset(DatasetFromList(dicts, copy=False), mapper)
    sampler = InferenceSampler(len(dataset)) if get_world_size() > 1 else None
    return torch.utils.data.DataLoader(
        dataset, batch_size=1, sampler=sampler, num_workers=0, collate_fn=_identity
    )
