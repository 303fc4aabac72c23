"""Data loaders for video datasets: clip loader for training, one-video-at-a-time for testing."""

import itertools
import logging
import time

import torch.utils.data
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
from detectron2.data.common import DatasetFromList, MapDataset
from detectron2.data.samplers import InferenceSampler, TrainingSampler
from detectron2.utils.comm import get_world_size

from .clip_mapper import ClipDatasetMapper, VideoInferenceMapper
from .validation import DatasetValidationError, drop_or_raise, frame_file_problems, log_dropped

__all__ = ["get_video_dataset_dicts", "build_clip_train_loader", "build_video_test_loader"]

logger = logging.getLogger(__name__)


def _dataset_source(name: str) -> str:
    json_file = MetadataCatalog.get(name).get("json_file")
    return f"dataset {name!r} ({json_file})" if json_file else f"dataset {name!r}"


def get_video_dataset_dicts(
    names, filter_empty: bool = True, check_files: bool = False, drop_invalid: bool = False
):
    """Video records of the named datasets, concatenated.

    Args:
        filter_empty: drop videos that have no annotated object in any frame (training).
        check_files: check that every listed frame file exists (one ``stat`` per frame), so a
            missing frame stops the run before iteration 0, not at a random step.
        drop_invalid: drop the videos with problems (invalid annotations, missing frame files)
            and log them, instead of raising ``DatasetValidationError`` (``DATASETS.DROP_INVALID``).
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
            problems = frame_file_problems(records, source)
            records = drop_or_raise(records, problems, source, drop_invalid)
            logger.info(
                "%s: %d frame files checked in %.2f s",
                name, sum(len(r["file_names"]) for r in records), time.perf_counter() - t0,
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


def build_clip_train_loader(cfg, mapper=None):
    """Infinite loader of clip dicts (see ClipDatasetMapper), SOLVER.IMS_PER_BATCH clips a batch."""
    dicts = get_video_dataset_dicts(
        cfg.DATASETS.TRAIN,
        filter_empty=True,
        check_files=True,
        drop_invalid=cfg.DATASETS.get("DROP_INVALID", False),
    )
    mapper = mapper if mapper is not None else ClipDatasetMapper(cfg, is_train=True)
    return build_detection_train_loader(
        dicts,
        mapper=mapper,
        sampler=TrainingSampler(len(dicts)),
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )


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
