"""Clip matching and ID assignment on plain tensors (no detectron2 dependency)."""

from .id_assignment import ClipTrackMatcher, assign_ids_from_scores, clip_frame_range

__all__ = ["ClipTrackMatcher", "assign_ids_from_scores", "clip_frame_range"]
