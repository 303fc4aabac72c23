"""YTVISEvaluator: detectron2's DatasetEvaluator for YouTube-VIS style video results."""

import itertools
import logging
import os
from collections import OrderedDict

import detectron2.utils.comm as comm
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils.logger import create_small_table
from tabulate import tabulate

from .results_io import load_json, write_results
from .ytvis_eval import evaluate as ytvis_evaluate

__all__ = ["YTVISEvaluator"]

logger = logging.getLogger(__name__)


class YTVISEvaluator(DatasetEvaluator):
    """Collects video results, writes CodaLab-ready files, and scores them where GT exists.

    Fed by detectron2's ``inference_on_dataset`` with the video test loader and a
    :class:`maskprop_d2.inference.VideoInferenceAdapter` as the model (what ``Trainer.test`` does).
    ``process(inputs, outputs)``: ``inputs`` are video dicts (``video_id``, ``length``), ``outputs``
    per video a list of ``{"category_id" (contiguous), "score", "segmentations"}``.
    ``evaluate()`` gathers all processes' results, writes ``output_dir/results.json`` and
    ``output_dir/results.zip`` (results.json at the zip root), and returns
    ``{"segm": {"AP", "AP50", ..., "AP-<class>"}}`` in percent when the dataset's JSON has
    annotations, else ``{}``. With ``identity=True`` (``cfg.TEST.IDENTITY_METRICS`` through
    ``from_config``) it also returns ``{"identity": {"HOTA", "DetA", "AssA", "IDF1" (percent),
    "IDSW" (count)}}`` by TrackEval, each instance scored once under its best category unless
    ``identity_best_category=False`` (``cfg.TEST.IDENTITY_BEST_CATEGORY``).
    """

    @classmethod
    def from_config(cls, cfg, dataset_name, output_dir=None, distributed=True):
        return cls(dataset_name, output_dir=output_dir, distributed=distributed,
                   identity=cfg.TEST.IDENTITY_METRICS,
                   identity_best_category=cfg.TEST.IDENTITY_BEST_CATEGORY)  # fmt: skip

    def __init__(self, dataset_name, output_dir=None, distributed=True, identity=False,
                 identity_best_category=True):
        self._dataset_name = dataset_name
        self._metadata = MetadataCatalog.get(dataset_name)
        if not hasattr(self._metadata, "json_file"):
            raise ValueError(
                "dataset {!r} has no json_file in its metadata: register it with "
                "register_ytvis_instances".format(dataset_name)
            )
        self._output_dir = output_dir
        self._distributed = distributed
        self._identity = bool(identity)
        self._identity_best_category = bool(identity_best_category)
        self._contiguous_to_dataset = None  # resolved on first use (_to_dataset_id)
        self.reset()

    def _to_dataset_id(self, contiguous_id):
        if self._contiguous_to_dataset is None:
            mapping = self._metadata.get("thing_dataset_id_to_contiguous_id", None)
            if not mapping:
                # not loaded yet (the loader sets it): the same map load_ytvis_json builds
                cats = load_json(self._metadata.json_file).get("categories", [])
                mapping = {cid: i for i, cid in enumerate(sorted(c["id"] for c in cats))}
            self._contiguous_to_dataset = {v: k for k, v in mapping.items()}
        try:
            return self._contiguous_to_dataset[contiguous_id]
        except KeyError:
            raise ValueError(
                "{}: contiguous category id {} out of range (0..{})".format(
                    self._dataset_name, contiguous_id, len(self._contiguous_to_dataset) - 1
                )
            ) from None

    def reset(self):
        self._predictions = []

    def process(self, inputs, outputs):
        for video, entries in zip(inputs, outputs, strict=True):
            length = int(video["length"])
            for e in entries:
                if len(e["segmentations"]) != length:
                    raise ValueError(
                        "video {}: a result has {} segmentations for {} frames".format(
                            video["video_id"], len(e["segmentations"]), length
                        )
                    )
                cat = self._to_dataset_id(int(e["category_id"]))
                self._predictions.append(
                    {
                        "video_id": int(video["video_id"]),
                        "category_id": cat,
                        "score": float(e["score"]),
                        "segmentations": e["segmentations"],
                    }
                )

    def evaluate(self):
        if self._distributed:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return {}
        else:
            predictions = self._predictions
        predictions.sort(key=lambda p: (p["video_id"], -p["score"]))

        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            json_path, zip_path = write_results(predictions, self._output_dir)
            logger.info("wrote %d results to %s and %s", len(predictions), json_path, zip_path)
        gt = load_json(self._metadata.json_file)
        if "annotations" not in gt:
            where = (
                os.path.join(self._output_dir, "results.zip")
                if self._output_dir
                else "(no OUTPUT_DIR)"
            )
            logger.info(
                "%s has no annotations: no local metrics. Submit %s to the CodaLab server.",
                self._dataset_name,
                where,
            )
            return {}
        result = ytvis_evaluate(gt, predictions)
        logger.info("YouTube-VIS evaluation of %s:\n%s", self._dataset_name, result.summary())
        segm = OrderedDict(
            (k, 100.0 * v if v >= 0 else float("nan")) for k, v in result.as_dict().items()
        )
        segm = OrderedDict(
            (k, segm[k]) for k in ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10"]
        )
        names = {c["id"]: c["name"] for c in gt.get("categories", [])}
        rows = []
        for cid in result.category_ids:
            ap = result.per_category_ap.get(cid, float("nan"))
            segm["AP-" + names.get(cid, str(cid))] = 100.0 * ap
            rows.append((names.get(cid, str(cid)), 100.0 * ap))
        logger.info(
            "Evaluation results for segm:\n"
            + create_small_table({k: segm[k] for k in list(segm)[:8]})
        )
        if rows:
            logger.info(
                "Per-category segm AP:\n"
                + tabulate(rows, headers=["category", "AP"], floatfmt=".3f")
            )
        out = {"segm": segm}
        if self._identity:
            from .identity import DEFAULT_MAX_BYTES, estimate_identity_bytes, identity_metrics

            need = estimate_identity_bytes(gt, predictions)
            if need > DEFAULT_MAX_BYTES:  # AP/AR stand; the run is not lost to a memory error
                logger.warning(
                    "identity metrics skipped: TrackEval would need about %.1f GiB (limit %.1f "
                    "GiB)", need / 2**30, DEFAULT_MAX_BYTES / 2**30)
            else:
                ident = identity_metrics(gt, predictions,
                                         best_category=self._identity_best_category)
                out["identity"] = OrderedDict(
                    (k, v if k == "IDSW" else 100.0 * v) for k, v in ident.items()
                )
                logger.info(
                    "Identity metrics (TrackEval):\n" + create_small_table(out["identity"]))
        return out

