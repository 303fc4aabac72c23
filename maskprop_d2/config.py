"""Config keys added by MaskProp. Every key has a default and a one-line comment."""

from detectron2.config import CfgNode as CN


def add_maskprop_config(cfg):
    """Add MaskProp's keys to a detectron2 config (in place), and register the project's
    components with detectron2 (``maskprop_d2.register_components``): a config with these keys
    names them."""
    from . import register_components

    register_components()
    # ---------------------------------------------------------------- training data checks
    # Training data is validated before iteration 0 (RLEs, polygons, frame files); a problem
    # stops the run. True: drop the videos with problems instead, and log each one (opt-in).
    cfg.DATASETS.DROP_INVALID = False
    # Frame files checked before iteration 0: "exists" (one stat per frame) or "decode" (decode
    # every frame and check its size: slower, benchmarks/verify_frames_cpu.md, but no frame can
    # fail later).
    cfg.DATASETS.VERIFY_FRAMES = "exists"
    # A clip whose frame cannot be decoded (or has the wrong size) during training is skipped
    # with a warning naming the file (data/skipped_clips); past this fraction of the clips drawn
    # (counted over at least 100) the run stops with an error.
    cfg.DATASETS.MAX_SKIPPED_CLIP_FRACTION = 0.05
    # ---------------------------------------------------------------- clips (data + model)
    cfg.INPUT.CLIP = CN()
    # T: a clip centred at frame t spans frames t-T..t+T (clamped to the video); paper default 6.
    cfg.INPUT.CLIP.HALF_LENGTH = 6
    # K: frames sampled from the window besides the centre frame per training clip (memory).
    cfg.INPUT.CLIP.NUM_SAMPLED_FRAMES = 2
    # How the K frames are drawn from [t-T, t+T]: "uniform" (without replacement) or "nearest".
    cfg.INPUT.CLIP.SAMPLING = "uniform"
    # Only frames with at least one (non-crowd) annotated object are chosen as clip centres.
    cfg.INPUT.CLIP.CENTER_REQUIRES_ANNOTATION = True
    # Colour jitter applied identically to every frame of a clip (training only).
    cfg.INPUT.COLOR_JITTER = CN()
    cfg.INPUT.COLOR_JITTER.ENABLED = False
    # Relative ranges for brightness/contrast/saturation: factor drawn from [1-x, 1+x].
    cfg.INPUT.COLOR_JITTER.BRIGHTNESS = 0.2
    cfg.INPUT.COLOR_JITTER.CONTRAST = 0.2
    cfg.INPUT.COLOR_JITTER.SATURATION = 0.2
    # Probability that a clip's colour channels are permuted (one permutation for all its frames):
    # objects whose colour says nothing about their class stop being learnable by colour.
    cfg.INPUT.COLOR_JITTER.CHANNEL_SHUFFLE = 0.0

    # ---------------------------------------------------------------- model
    cfg.MODEL.MASKPROP = CN()
    # Also compute the Mask R-CNN losses on every sampled frame, not only on the centre frame.
    cfg.MODEL.MASKPROP.DETECTION_LOSS_ON_ALL_FRAMES = False
    # Train only the propagation head, on a frozen detector loaded with MODEL.WEIGHTS (backbone,
    # RPN, box and mask heads in eval mode, no detection losses): a propagation stage after
    # joint training, as MaskTrack R-CNN's tracking head trains.
    cfg.MODEL.MASKPROP.TRAIN_PROPAGATION_ONLY = False

    cfg.MODEL.ROI_MASK_PROP_HEAD = CN()
    # Name of the propagation head in ROI_MASK_PROP_HEAD_REGISTRY.
    cfg.MODEL.ROI_MASK_PROP_HEAD.NAME = "MaskPropagationHead"
    # Backbone/FPN feature the propagation runs on ("p2" is faithful; "p3" is 4x cheaper).
    cfg.MODEL.ROI_MASK_PROP_HEAD.IN_FEATURE = "p3"
    # Channels after the 1x1 reduction of the input feature (the head's working width).
    cfg.MODEL.ROI_MASK_PROP_HEAD.CONV_DIM = 32
    # Kernel size k of the deformable convolution (offsets have 2*k*k channels).
    cfg.MODEL.ROI_MASK_PROP_HEAD.KERNEL_SIZE = 3
    # Residual blocks predicting the offsets from f_t - f_{t+delta}.
    cfg.MODEL.ROI_MASK_PROP_HEAD.NUM_RES_BLOCKS = 1
    # What the offset branch sees: "difference" (f_t - f_{t+delta}, the paper) or "correlation"
    # (the difference and a local correlation volume of the two frames' features).
    cfg.MODEL.ROI_MASK_PROP_HEAD.OFFSET_INPUT = "difference"
    # Largest displacement (feature pixels, per axis) of the correlation volume.
    cfg.MODEL.ROI_MASK_PROP_HEAD.CORRELATION_RADIUS = 3
    # Add to the head's logits a learned affine map of the source mask warped by the offsets of
    # the deformable conv's centre tap (not in the paper; zero-initialised).
    cfg.MODEL.ROI_MASK_PROP_HEAD.MASK_WARP = False
    # ROI mode: run the deformable conv on ROI_SIZE x ROI_SIZE windows around each source
    # instance (0 = over the whole frame; same result inside a window, much cheaper).
    cfg.MODEL.ROI_MASK_PROP_HEAD.ROI_SIZE = 16
    # Motion margin (feature pixels) added on each side of the source box to make its window.
    cfg.MODEL.ROI_MASK_PROP_HEAD.ROI_MARGIN = 4.0
    # Smallest window side (feature pixels) in ROI mode; 0 = ROI_SIZE. Below ROI_SIZE, windows
    # of small objects are sampled finer than the feature grid (see FINE_CROPS).
    cfg.MODEL.ROI_MASK_PROP_HEAD.ROI_MIN_WINDOW = 0.0
    # Propagate at the ROI crops' resolution (ROI mode only): source masks and training targets
    # are sampled from image-resolution masks on each window, and video inference keeps the
    # propagated crops (pasted at output size) instead of pasting them onto the feature grid.
    cfg.MODEL.ROI_MASK_PROP_HEAD.FINE_CROPS = False
    # Weight of loss_mask_prop (mean over (instance, frame) pairs of 1 - soft IoU).
    cfg.MODEL.ROI_MASK_PROP_HEAD.LOSS_WEIGHT = 1.0
    # Weight of a per-pixel binary cross-entropy added to the soft-IoU loss (0 = the paper's
    # loss alone).
    cfg.MODEL.ROI_MASK_PROP_HEAD.BCE_WEIGHT = 0.0
    # Centre masks propagated in training: "gt" (teacher forcing) or "pred" (predicted masks
    # of proposals matched to each GT; narrows the train/test gap).
    cfg.MODEL.ROI_MASK_PROP_HEAD.TRAIN_SOURCE_MASKS = "gt"
    # Also train on the (centre -> centre) rows, δ = 0. Video inference uses the mask head's
    # mask at a track's own centre frame (INFERENCE.CENTER_MASK "detection"), so those rows only
    # matter with CENTER_MASK "propagated"; dropping them saves their share of the head's cost.
    cfg.MODEL.ROI_MASK_PROP_HEAD.TRAIN_CENTER_ROWS = True

    # MaskTrack R-CNN's tracking head (MaskTrackROIHeads, the "tracking_head" tracker).
    cfg.MODEL.TRACK_HEAD = CN()
    # Name of the head in maskprop_d2.modeling.TRACK_HEAD_REGISTRY.
    cfg.MODEL.TRACK_HEAD.NAME = "TrackEmbeddingHead"
    # Fully connected layers on the box branch's pooled ROI feature (the last one embeds).
    cfg.MODEL.TRACK_HEAD.NUM_FC = 2
    # Width of the hidden fully connected layers.
    cfg.MODEL.TRACK_HEAD.FC_DIM = 1024
    # Embedding size (output of the last layer).
    cfg.MODEL.TRACK_HEAD.EMBED_DIM = 1024
    # Weight of loss_track (cross-entropy over the reference instances + "new object").
    cfg.MODEL.TRACK_HEAD.LOSS_WEIGHT = 1.0

    # ---------------------------------------------------------------- solver
    # "SGD" (detectron2's optimizer) or "ADAMW" (maskprop_d2.solver.build_optimizer).
    cfg.SOLVER.OPTIMIZER = "SGD"
    # AdamW's (beta1, beta2); unused by SGD.
    cfg.SOLVER.BETAS = (0.9, 0.999)

    # ---------------------------------------------------------------- video inference
    cfg.MODEL.MASKPROP.INFERENCE = CN()
    # Detections below this score are not propagated (frame-level detector threshold).
    cfg.MODEL.MASKPROP.INFERENCE.SCORE_THRESH = 0.3
    # MaskProp tracker (and flow_propagation): detections scoring in [CONTINUE_SCORE_THRESH,
    # SCORE_THRESH) are propagated too but may only continue an existing video ID, never start
    # one (a track survives frames where its object's score dips). >= SCORE_THRESH: off.
    cfg.MODEL.MASKPROP.INFERENCE.CONTINUE_SCORE_THRESH = 1.0
    # Class-agnostic box NMS over a frame's detections (IoU above this: the lower score goes);
    # 1.0 keeps detectron2's per-class NMS only, under which an object can be detected once per
    # likely class and start several tracks.
    cfg.MODEL.MASKPROP.INFERENCE.NMS_THRESH = 1.0
    # At most this many detections per frame are propagated.
    cfg.MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME = 10
    # A clip track joins an existing video ID when its mean matching score q clears this.
    cfg.MODEL.MASKPROP.INFERENCE.MATCH_THRESH = 0.3
    # Threshold applied to the combined soft masks of a video instance.
    cfg.MODEL.MASKPROP.INFERENCE.MASK_THRESH = 0.5
    # How the masks of a video instance's clip tracks covering a frame are combined: "mean" (the
    # paper: equal weights) or "distance" (a track centred at t weighs MASK_DISTANCE_DECAY**|τ-t|
    # at frame τ: the frame's own detection mask dominates, propagated masks fill the frames
    # where the instance was not detected).
    cfg.MODEL.MASKPROP.INFERENCE.MASK_COMBINATION = "distance"
    # λ of the "distance" combination; below 1/3 a frame's own binary detection mask comes out
    # unchanged.
    cfg.MODEL.MASKPROP.INFERENCE.MASK_DISTANCE_DECAY = 0.25
    # An ID not detected at a frame (its mask there is propagated only) is left out of the frame
    # when more than this fraction of its mask lies on IDs detected there (a fragment's copy of
    # a detected object, or an object hidden behind one); >= 1 keeps every mask (the paper).
    # 0.5 measured better by HOTA, DetA and IDF1 on the three synthetic splits, AP -0.3 to +1.0
    # (docs/results.md, section 3).
    cfg.MODEL.MASKPROP.INFERENCE.SUPPRESS_COVERED = 0.5
    # Re-identification memory of the maskprop / flow_propagation trackers (docs/method.md): a
    # clip track that would start a new ID is first matched by appearance, class and position
    # with the IDs that left the clip matching's reach within the last MAX_GAP frames.
    cfg.MODEL.MASKPROP.INFERENCE.REID = CN()
    # On by default (it measured better on every synthetic split: docs/results.md); off
    # reproduces the paper's clip matching exactly.
    cfg.MODEL.MASKPROP.INFERENCE.REID.ENABLED = True
    # Appearance embedding: "box_features" (the box head's FC features of the detection: no
    # training of their own; they measured better than the tracking head's on every synthetic
    # split), "track_head" (MaskTrack R-CNN's TrackEmbeddingHead, needs a model with one), or
    # "auto" (the tracking head if the model has one, else the box features).
    cfg.MODEL.MASKPROP.INFERENCE.REID.EMBEDDING = "box_features"
    # IDs unseen for more than this many frames are forgotten.
    cfg.MODEL.MASKPROP.INFERENCE.REID.MAX_GAP = 40
    # At most this many remembered IDs (the longest unseen are dropped).
    cfg.MODEL.MASKPROP.INFERENCE.REID.CAPACITY = 64
    # score = cos(embeddings) + CLASS_WEIGHT [same class]
    #         + POSITION_WEIGHT exp(-(centre distance / frame diagonal / POSITION_SIGMA)^2);
    # a remembered ID is taken when the score is above THRESH (one-to-one per clip).
    cfg.MODEL.MASKPROP.INFERENCE.REID.THRESH = 0.9
    cfg.MODEL.MASKPROP.INFERENCE.REID.CLASS_WEIGHT = 0.5
    cfg.MODEL.MASKPROP.INFERENCE.REID.POSITION_WEIGHT = 0.3
    cfg.MODEL.MASKPROP.INFERENCE.REID.POSITION_SIGMA = 0.25
    # Also offer the IDs of the clip matching's window that no track of the clip took (a track
    # whose masks overlapped its own ID's too little), not only IDs the masks cannot reach. The
    # track then replaces the ID's earlier masks from its centre frame on. With ground-truth
    # detections it removes most identity switches (docs/results.md); off: the paper's matching.
    cfg.MODEL.MASKPROP.INFERENCE.REID.WINDOW_IDS = True
    # The score a window ID needs (the clip matching found the track unlike the ID's masks, so
    # the appearance must make up for it); below THRESH counts as THRESH. Chosen on the seed-1
    # val split with the weights of a 1350-iteration run of the tiny recipe at a 2x input
    # (AP 36.4 / 36.7 / 36.5 / 36.6 at 0.9 / 1.2 / 1.4 / 1.6; off 36.6).
    cfg.MODEL.MASKPROP.INFERENCE.REID.WINDOW_THRESH = 1.2
    # The video tracker, a name of maskprop_d2.tracking.tracker_names(): "maskprop" (clip
    # tracks + ID assignment), "flow_propagation" (the same with optical-flow warping),
    # "tracking_head" (MaskTrack R-CNN's association; needs a model with a tracking head) or
    # "frame_linking" (per-frame detections linked by mask IoU), or one you register.
    cfg.MODEL.MASKPROP.INFERENCE.TRACKER = "maskprop"
    # frame_linking: a detection joins a previous-frame track when their mask IoU is >= this.
    cfg.MODEL.MASKPROP.INFERENCE.LINK_IOU_THRESH = 0.3
    # flow_propagation: OpenCV dense optical flow warping the masks, "dis" or "farneback".
    cfg.MODEL.MASKPROP.INFERENCE.FLOW_METHOD = "dis"
    # tracking_head: weights of log(detection score), box IoU with the instance's last box, and
    # class agreement in MaskTrack R-CNN's matching score (added to the log-probability of the
    # match; the "new object" entry counts as IoU 0 and as agreeing in class).
    cfg.MODEL.MASKPROP.INFERENCE.TRACK_SCORE_WEIGHT = 1.0
    cfg.MODEL.MASKPROP.INFERENCE.TRACK_IOU_WEIGHT = 2.0
    cfg.MODEL.MASKPROP.INFERENCE.TRACK_CLASS_WEIGHT = 10.0
    # At most this many instances per video in the results (sorted by score).
    cfg.TEST.DETECTIONS_PER_VIDEO = 100
    # YTVISEvaluator (built with YTVISEvaluator.from_config) also reports HOTA, DetA, AssA, IDF1
    # and IDSW by TrackEval under "identity" (slower than AP: TrackEval works frame by frame).
    cfg.TEST.IDENTITY_METRICS = False
    # The identity metrics score a video instance reported under several categories
    # (CATEGORIES_PER_INSTANCE > 1: the same masks, one entry per category) once, under its
    # highest-scoring category; False scores every entry as a track of its category (each
    # lower-scoring copy is then a false-positive track).
    cfg.TEST.IDENTITY_BEST_CATEGORY = True
    # A track's mask at its own centre frame: "detection" (Mask R-CNN mask, full resolution) or
    # "propagated" (the propagation head's output, as at the other frames).
    cfg.MODEL.MASKPROP.INFERENCE.CENTER_MASK = "detection"
    # Each video instance is reported with up to this many categories (its best mean class
    # probabilities), one result entry each; 1 gives the single-category output.
    cfg.MODEL.MASKPROP.INFERENCE.CATEGORIES_PER_INSTANCE = 1


class ConfigValueError(ValueError):
    """A config value that inference or training cannot use (the message names the key)."""


def check_training_data_config(cfg, source: str = "") -> None:
    """Raise :class:`ConfigValueError` naming the key if ``DATASETS.VERIFY_FRAMES`` or
    ``DATASETS.MAX_SKIPPED_CLIP_FRACTION`` is unusable."""
    import math

    where = f" (config {source})" if source else ""
    if cfg.DATASETS.VERIFY_FRAMES not in ("exists", "decode"):
        raise ConfigValueError(f"DATASETS.VERIFY_FRAMES must be 'exists' or 'decode', got "
                               f"{cfg.DATASETS.VERIFY_FRAMES!r}{where}")
    v = cfg.DATASETS.MAX_SKIPPED_CLIP_FRACTION
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or not 0 <= v <= 1:
        raise ConfigValueError(f"DATASETS.MAX_SKIPPED_CLIP_FRACTION must be in [0, 1], got "
                               f"{v!r}{where}")


def get_maskprop_cfg(config_file: str = "", opts=()):
    """A detectron2 config with MaskProp's keys, merged from ``config_file`` then ``opts``
    (a flat ``[KEY, VALUE, ...]`` list), checked by :func:`check_training_data_config`
    (``maskprop_d2.inference.check_inference_config`` checks what inference needs). Not frozen.
    On CPU, ``SOLVER.AMP.ENABLED`` is turned off
    (detectron2's AMP trainer needs CUDA)."""
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_maskprop_config(cfg)
    if config_file:  # plain YAML only: a Python tag is an error naming the file
        from .utils.safe_load import merge_config_file

        merge_config_file(cfg, config_file)
    cfg.merge_from_list(list(opts))
    if cfg.SOLVER.AMP.ENABLED and cfg.MODEL.DEVICE == "cpu":
        import logging

        logging.getLogger("maskprop_d2").warning("SOLVER.AMP.ENABLED ignored on CPU")
        cfg.SOLVER.AMP.ENABLED = False
    check_training_data_config(cfg, config_file)
    return cfg
