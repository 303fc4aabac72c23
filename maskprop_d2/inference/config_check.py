"""What video inference needs of a config, checked when the config is built (``train_net.py``
setup, the demo, the benchmarks), so that a bad tracker name or threshold stops a run before
training starts rather than at its first evaluation."""

from ..config import ConfigValueError

__all__ = ["check_inference_config", "ConfigValueError"]


# Range checks of the values video inference reads: key under MODEL.MASKPROP.INFERENCE ->
# (low, high); None: unbounded on that side.
_INFERENCE_RANGES = {
    "SCORE_THRESH": (0.0, 1.0),
    "CONTINUE_SCORE_THRESH": (0.0, None),  # >= SCORE_THRESH turns it off
    "NMS_THRESH": (0.0, 1.0),
    "MATCH_THRESH": (0.0, 1.0),
    "MASK_THRESH": (0.0, 1.0),
    "LINK_IOU_THRESH": (0.0, 1.0),
    "SUPPRESS_COVERED": (0.0, None),  # >= 1 turns it off
    "TRACK_SCORE_WEIGHT": (None, None),
    "TRACK_IOU_WEIGHT": (None, None),
    "TRACK_CLASS_WEIGHT": (None, None),
}


def check_inference_config(cfg, source: str = "") -> None:
    """Raise :class:`ConfigValueError` naming the key (and ``source``, the config file) if a
    value that video inference needs is unusable: an unknown ``INFERENCE.TRACKER`` or one the
    model's ROI heads cannot serve, a threshold that is NaN or out of range, a count < 1, an
    unknown ``FLOW_METHOD`` / ``CENTER_MASK``. Called when the config is built, so that a run
    with ``TEST.EVAL_PERIOD`` does not fail at its first evaluation."""
    import math

    from detectron2.modeling import ROI_HEADS_REGISTRY

    from ..tracking import tracker_class, tracker_names
    from ..tracking.clip_tracks import MASK_COMBINATIONS
    from ..tracking.flow_propagation import FLOW_METHODS

    where = f" (config {source})" if source else ""
    inf = cfg.MODEL.MASKPROP.INFERENCE

    def fail(key, msg):
        raise ConfigValueError(f"{key} {msg}{where}")

    for key, (low, high) in _INFERENCE_RANGES.items():
        v = inf[key]
        name = "MODEL.MASKPROP.INFERENCE." + key
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            fail(name, f"must be a finite number, got {v!r}")
        if (low is not None and v < low) or (high is not None and v > high):
            rng = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
            fail(name, f"must be {rng}, got {v!r}")
    for name, v in (("MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME", inf.TOPK_PER_FRAME),
                    ("MODEL.MASKPROP.INFERENCE.CATEGORIES_PER_INSTANCE",
                     inf.CATEGORIES_PER_INSTANCE),
                    ("TEST.DETECTIONS_PER_VIDEO", cfg.TEST.DETECTIONS_PER_VIDEO)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            fail(name, f"must be an integer >= 1, got {v!r}")
    h = cfg.INPUT.CLIP.HALF_LENGTH
    if isinstance(h, bool) or not isinstance(h, int) or h < 0:
        fail("INPUT.CLIP.HALF_LENGTH", f"must be an integer >= 0, got {h!r}")
    if inf.FLOW_METHOD not in FLOW_METHODS:
        fail("MODEL.MASKPROP.INFERENCE.FLOW_METHOD",
             f"must be one of {', '.join(FLOW_METHODS)}, got {inf.FLOW_METHOD!r}")
    if inf.CENTER_MASK not in ("detection", "propagated"):
        fail("MODEL.MASKPROP.INFERENCE.CENTER_MASK",
             f"must be 'detection' or 'propagated', got {inf.CENTER_MASK!r}")
    if inf.MASK_COMBINATION not in MASK_COMBINATIONS:
        fail("MODEL.MASKPROP.INFERENCE.MASK_COMBINATION",
             f"must be one of {', '.join(MASK_COMBINATIONS)}, got {inf.MASK_COMBINATION!r}")
    d = inf.MASK_DISTANCE_DECAY
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 1:
        fail("MODEL.MASKPROP.INFERENCE.MASK_DISTANCE_DECAY", f"must be in (0, 1], got {d!r}")
    reid = inf.REID
    if reid.EMBEDDING not in ("auto", "track_head", "box_features"):
        fail("MODEL.MASKPROP.INFERENCE.REID.EMBEDDING",
             f"must be auto, track_head or box_features, got {reid.EMBEDDING!r}")
    for key in ("MAX_GAP", "CAPACITY"):
        v = reid[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            fail("MODEL.MASKPROP.INFERENCE.REID." + key, f"must be an integer >= 1, got {v!r}")
    for key in ("THRESH", "CLASS_WEIGHT", "POSITION_WEIGHT", "POSITION_SIGMA"):
        v = reid[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            fail("MODEL.MASKPROP.INFERENCE.REID." + key, f"must be a finite number, got {v!r}")
    tracker = inf.TRACKER
    try:
        tracker_class(tracker)
    except ValueError:
        fail("MODEL.MASKPROP.INFERENCE.TRACKER",
             f"names an unknown tracker {tracker!r}; registered trackers: "
             f"{', '.join(tracker_names())}")
    # what the built-in trackers need of the ROI heads (a tracker someone registers: no check),
    # for a video model (detectron2's bare defaults build no video model)
    from detectron2.modeling import META_ARCH_REGISTRY

    from ..modeling.meta_arch import MaskProp
    from ..modeling.roi_heads import MaskPropROIHeads

    try:
        arch = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
        heads = ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)
    except KeyError:
        return  # an unknown name: detectron2's build_model names it
    if not (isinstance(arch, type) and issubclass(arch, MaskProp)):
        return

    if tracker == "tracking_head" and not hasattr(heads, "embed"):
        fail("MODEL.MASKPROP.INFERENCE.TRACKER",
             f"'tracking_head' needs ROI heads with a tracking head (MODEL.ROI_HEADS.NAME: "
             f"MaskTrackROIHeads, e.g. configs/synthetic/masktrack_tiny.yaml), got "
             f"{cfg.MODEL.ROI_HEADS.NAME}")
    if tracker in ("maskprop", "flow_propagation") and not issubclass(heads, MaskPropROIHeads):
        fail("MODEL.MASKPROP.INFERENCE.TRACKER",
             f"{tracker!r} needs the propagation head (MODEL.ROI_HEADS.NAME: MaskPropROIHeads or "
             f"MaskTrackROIHeads), got {cfg.MODEL.ROI_HEADS.NAME}")
