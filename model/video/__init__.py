"""One stream's online tracking loop: `VideoTracker` and the per-frame rules it applies (association,
hot start, mask clean-up, re-anchoring), over the networks seen through the `FrameModel` seam."""
