"""The SAM 3 image detector (`detector.*` keys): geometry (exemplar) encoder, fusion encoder, DETR
decoder with a presence token, scoring and segmentation heads, and the image predictor on top."""
