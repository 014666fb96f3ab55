"""Liveness: is the face at the kiosk a real, present person, or a print or a screen?

Cues, each a small module (numpy and OpenCV; ONNX Runtime for cnn), each judged on cameras and
attacks it was not fitted on (benchmarks/liveness_cross_dataset.py):

* ``texture``: micro-texture and frequency content of the grey face chip;
* ``cnn`` (optional): a small grey network on the same chip, an ONNX file
  beside the liveness model;
* ``context``: straight edges of a sheet, phone or screen around the face box;
* ``motion``: over the frames of one tracked face, does it move like a plane
  (the eyes and mouth corners explain the nose by one homography) or like a
  head (the nose shows parallax)? Also the optional active check;
* ``attributes``: the attribute engine's ``live`` head (colour statistics of
  the first convolution): camera-specific, kept for kiosks that trained it on
  their own camera.

``model`` reads the liveness manifest (which cues, their weights, thresholds
and validated figures); ``judge`` combines the enabled cues per frame and per
track, the same way for `edge-verify liveness` and the daemon: any enabled cue
that calls an attack refuses, and the verdict names it.
"""
from edge.liveness.attributes import (LIVE, LiveWindow, attribute_probabilities, attributes_engine_path,
                                      check_liveness_manifest, check_same_chips, live_scores, live_threshold,
                                      liveness_check, load_attributes_engine)

__all__ = ["LIVE", "LiveWindow", "attribute_probabilities", "attributes_engine_path", "check_liveness_manifest",
           "check_same_chips", "live_scores", "live_threshold", "liveness_check", "load_attributes_engine"]
