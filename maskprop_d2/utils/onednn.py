"""oneDNN's primitive cache, kept small for streaming inference on the CPU.

PyTorch runs CPU convolutions through oneDNN, which keeps one compiled primitive per layer and
input shape in a process-wide cache (least recently used out first; 1024 entries by default).
A video's frames all have one size, but the heads see a different number of detections from
frame to frame (the mask head n, the propagation head n x (2T + 1)), so over thousands of frames
the cache fills with an entry per head layer and batch size: hundreds of MiB of resident memory
that grow with the video's length until the cache is full (docs/results.md, section 6). The
inference entry points (``VideoPredictor``, ``VideoInferenceAdapter``) cap it with
:func:`limit_primitive_cache`.
"""

import os

__all__ = ["CACHE_ENV", "STREAMING_CACHE_CAPACITY", "limit_primitive_cache"]

#: oneDNN's environment variable for the cache's capacity (number of primitives).
CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
#: The capacity set for streaming inference: more than the layers of a frame's forward pass (an R50
#: backbone, FPN and heads: about 80), so the fixed-shape ones stay cached between frames.
STREAMING_CACHE_CAPACITY = 128


def limit_primitive_cache(capacity: int = STREAMING_CACHE_CAPACITY) -> bool:
    """Set ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` to ``capacity`` unless it is set already (a user's
    value wins). oneDNN reads it when it creates its cache, at the process's first CPU
    convolution: called later, it changes nothing. Returns True if this call set it."""
    if capacity < 0:
        raise ValueError("capacity must be >= 0, got {}".format(capacity))
    if CACHE_ENV in os.environ:
        return False
    os.environ[CACHE_ENV] = str(int(capacity))
    return True
