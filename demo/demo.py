#!/usr/bin/env python
"""MaskProp demo on a video file or a folder/glob of frames, streaming (constant memory).

    python demo/demo.py --config-file configs/synthetic/maskprop_tiny.yaml \
        --video-input in.mp4 --output out.mp4 [--json tracks.json] \
        --opts MODEL.WEIGHTS output/synthetic/maskprop_tiny/model_final.pth
"""

import argparse
import glob
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time

import cv2
import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from visualizer import draw_frame, labels_for, open_video_writer, output_size  # noqa: E402

logger = logging.getLogger("maskprop_d2.demo")


class DemoError(Exception):
    """A user-facing error: bad input, output or config."""


def _finite(text, option, low=None, high=None, low_open=False):
    """argparse type: a finite float within [low, high] (``low_open``: > low)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{option} must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{option} must be a finite number, got {text!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise argparse.ArgumentTypeError(
            f"{option} must be {'>' if low_open else '>='} {low:g}, got {text}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"{option} must be <= {high:g}, got {text}")
    return value


def get_parser():
    p = argparse.ArgumentParser(description="MaskProp video instance segmentation demo")
    p.add_argument("--config-file", required=True, metavar="FILE")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video-input", help="a video file")
    src.add_argument("--input", nargs="+", help="a folder of frames, a glob, or frame files")
    p.add_argument(
        "--output", required=True, help="output video: .mp4 (H.264; also .mkv, .mov) or .avi (MJPG)"
    )
    p.add_argument(
        "--output-scale",
        type=float,
        default=1.0,
        help="size of the output video relative to the input (e.g. 4 for a 96x64 video: legible "
        "labels)",
    )
    p.add_argument("--json", help="also write the tracks in the YouTube-VIS results format")
    p.add_argument("--fps", type=lambda t: _finite(t, "--fps", 0.0, 1000.0, low_open=True),
                   default=6.0, help="output fps for --input frames (0 < fps <= 1000)")
    p.add_argument(
        "--confidence-threshold",
        type=lambda t: _finite(t, "--confidence-threshold", 0.0, 1.0),
        default=None,
        help="detection score threshold in [0, 1] (MODEL.MASKPROP.INFERENCE.SCORE_THRESH)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--opts", default=[], nargs=argparse.REMAINDER, help="config overrides KEY VALUE"
    )
    return p


def _first_line(e):
    msg = str(e).strip()
    return "{}: {}".format(type(e).__name__, msg.splitlines()[0] if msg else "")


def setup_cfg(args):
    from maskprop_d2 import get_maskprop_cfg

    if not os.path.isfile(args.config_file):
        raise DemoError("config file not found: {}".format(args.config_file))
    try:
        cfg = get_maskprop_cfg(args.config_file)  # plain YAML only (no Python tags)
    except Exception as e:  # YAML syntax, Python tags, unknown keys, wrong value types
        raise DemoError(
            "invalid config file {}: {}".format(args.config_file, _first_line(e))
        ) from None
    try:
        cfg.merge_from_list(args.opts)
    except Exception as e:
        raise DemoError(
            "invalid --opts {}: {}".format(" ".join(args.opts), _first_line(e))
        ) from None
    if args.confidence_threshold is not None:
        cfg.MODEL.MASKPROP.INFERENCE.SCORE_THRESH = args.confidence_threshold
    from maskprop_d2.config import ConfigValueError
    from maskprop_d2.inference import check_inference_config

    try:  # tracker name, thresholds, counts: before any weight is read
        check_inference_config(cfg, args.config_file)
    except ConfigValueError as e:
        raise DemoError(str(e)) from None
    w = cfg.MODEL.WEIGHTS
    if not w:
        raise DemoError("MODEL.WEIGHTS is empty: pass --opts MODEL.WEIGHTS path/to/model_final.pth")
    if "://" not in w and not os.path.isfile(w):
        raise DemoError("weights file not found: {}".format(w))
    if cfg.MODEL.DEVICE.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            logger.warning("CUDA is not available: running on CPU")
            cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


class VideoFileSource:
    """Frames of a video file, read one at a time."""

    def __init__(self, path):
        if not os.path.isfile(path):
            raise DemoError("video file not found: {}".format(path))
        self.path = path
        self.cap = cv2.VideoCapture(path)
        if not self.cap.isOpened():
            raise DemoError("cannot open video (unreadable or not a video): {}".format(path))
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not self.fps or self.fps != self.fps or self.fps <= 0:
            raise DemoError("video has no valid frame rate: {}".format(path))
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.expected = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.read = 0

    def __len__(self):
        return max(self.expected, 0)

    def __iter__(self):
        while True:
            ok, frame = self.cap.read()
            if not ok:
                break
            self.read += 1
            yield frame
        self.cap.release()
        if self.read == 0:
            raise DemoError("video has no decodable frame: {}".format(self.path))
        if self.expected > 0 and self.read < self.expected:
            raise DemoError(
                "video is truncated: {} declares {} frames but only {} could be decoded".format(
                    self.path, self.expected, self.read
                )
            )


class FrameFilesSource:
    """Frames from image files (a folder, a glob or a list), in sorted order."""

    def __init__(self, inputs, fps):
        files = []
        for item in inputs:
            if os.path.isdir(item):
                files += sorted(
                    os.path.join(item, f)
                    for f in os.listdir(item)
                    if f.lower().endswith((".jpg", ".jpeg", ".png", ".bmp"))
                )
            elif any(c in item for c in "*?["):
                files += sorted(glob.glob(item))
            elif os.path.isfile(item):
                files.append(item)
            else:
                raise DemoError("input not found: {}".format(item))
        if not files:
            raise DemoError("no frame images found in {}".format(" ".join(inputs)))
        self.files, self.fps = files, fps
        first = cv2.imread(files[0])
        if first is None:
            raise DemoError("cannot read image: {}".format(files[0]))
        self.height, self.width = first.shape[:2]

    def __len__(self):
        return len(self.files)

    def __iter__(self):
        for f in self.files:
            img = cv2.imread(f)
            if img is None:
                raise DemoError("cannot read image: {}".format(f))
            if img.shape[:2] != (self.height, self.width):
                raise DemoError(
                    "frame {} is {}x{}, the first frame is {}x{}".format(
                        f, img.shape[1], img.shape[0], self.width, self.height
                    )
                )
            yield img


def _check_output(path, overwrite):
    if os.path.isdir(path):
        raise DemoError("{} is a folder: give a file name".format(path))
    if os.path.exists(path) and not overwrite:
        raise DemoError("{} exists: pass --overwrite to replace it".format(path))
    d = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(d):
        raise DemoError("output folder does not exist: {}".format(d))
    if not os.access(d, os.W_OK):
        raise DemoError("cannot write to output folder: {}".format(d))


def _tmp_path(path):
    """A hidden temporary file next to ``path`` (creating it proves the folder is writable)."""
    d = os.path.dirname(os.path.abspath(path))
    stem, ext = os.path.splitext(os.path.basename(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + stem + ".", suffix=ext, dir=d)
    except OSError as e:
        raise DemoError("cannot write {}: {}".format(path, e.strerror or e)) from None
    os.close(fd)
    return tmp


class _Terminated(BaseException):
    """Raised by the SIGTERM handler so that temporary outputs are removed on the way out."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def _remove(paths):
    for p in paths:
        try:
            os.remove(p)
        except OSError:
            pass


def run(args):
    """Check every output path, then process the video; all outputs are published (renamed from
    hidden temporary files) only when everything succeeded, and none is left on any error,
    Ctrl-C or SIGTERM."""
    outputs = [args.output] + ([args.json] if args.json else [])
    if args.json and os.path.abspath(args.json) == os.path.abspath(args.output):
        raise DemoError("--json and --output are the same file: {}".format(args.json))
    for path in outputs:
        _check_output(path, args.overwrite)
    cfg = setup_cfg(args)
    temps = []
    try:
        for path in outputs:  # before the first frame is read: proves every output is writable
            temps.append(_tmp_path(path))
        n = _process(args, cfg, temps[0], temps[1] if args.json else None)
        from maskprop_d2.utils.file_io import publish_file

        published = []
        try:
            for tmp, path in zip(temps, outputs, strict=True):
                publish_file(tmp, path)
                published.append(path)
        except OSError as e:
            _remove(published)
            raise DemoError("cannot publish {}: {}".format(path, e.strerror or e)) from None
    except BaseException:
        _remove(temps)
        raise
    return n


def _process(args, cfg, tmp_video, tmp_json):
    source = (
        VideoFileSource(args.video_input)
        if args.video_input
        else FrameFilesSource(args.input, args.fps)
    )

    from maskprop_d2.inference import VideoPredictor, VideoResultsCollector

    try:
        predictor = VideoPredictor(cfg)
    except Exception as e:  # a corrupt or incompatible weights file
        raise DemoError(
            "cannot load the model (config {}, weights {}): {}".format(
                args.config_file, cfg.MODEL.WEIGHTS, _first_line(e)
            )
        ) from None
    meta = predictor.metadata
    names = list(getattr(meta, "thing_classes", []) or [])

    try:
        size = output_size(source.width, source.height, args.output_scale)
        writer = open_video_writer(tmp_video, os.path.splitext(args.output)[1], source.fps, size)
    except (ValueError, OSError) as e:
        raise DemoError("cannot write {}: {}".format(args.output, e)) from None
    collector = VideoResultsCollector() if tmp_json else None
    n = 0
    start = time.perf_counter()
    try:
        bar = tqdm.tqdm(
            total=len(source) or None, unit="frame", desc=cfg.MODEL.MASKPROP.INFERENCE.TRACKER
        )
        for frame, out in predictor(iter(source)):
            ids = out.ids.tolist()
            labels = labels_for(ids, predictor.instance_label, names)
            writer.write(draw_frame(frame, ids, out.masks.numpy(), labels, size))
            if collector is not None:
                collector.add(out)
            n += 1
            bar.update(1)
            bar.set_postfix(fps="{:.2f}".format(n / (time.perf_counter() - start)))
        bar.close()
    finally:
        writer.release()
    if tmp_json:
        contiguous_to_dataset = {}
        if meta is not None and hasattr(meta, "thing_dataset_id_to_contiguous_id"):
            contiguous_to_dataset = {
                v: k for k, v in meta.thing_dataset_id_to_contiguous_id.items()
            }
        entries = [  # with the dataset's category ids (contiguous + 1 without metadata)
            {
                "video_id": 1,
                "category_id": int(contiguous_to_dataset.get(c, c + 1)),
                "score": float(e["score"]),
                "segmentations": e["segmentations"],
            }
            for e in collector.results(predictor.video_instances())
            for c in [e["category_id"]]
        ]
        try:
            with open(tmp_json, "w") as f:
                json.dump(entries, f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise DemoError("cannot write {}: {}".format(args.json, e.strerror or e)) from None
    logger.info(
        "wrote %d frames to %s (%.2f frames/s)", n, args.output, n / (time.perf_counter() - start)
    )
    return n


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    args = get_parser().parse_args(argv)
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        run(args)
    except DemoError as e:
        print("demo.py: error: {}".format(e), file=sys.stderr)
        return 2
    except _Terminated:
        print("demo.py: terminated (SIGTERM); no output written", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("demo.py: interrupted; no output written", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
    return 0


if __name__ == "__main__":
    # Run as a program: ignore the known deprecation warnings of detectron2 v0.6 / fvcore on the
    # current torch (importing the package imports neither; a user's -W / PYTHONWARNINGS wins).
    from maskprop_d2._cli_warnings import quiet_known_warnings

    quiet_known_warnings()
    sys.exit(main())
