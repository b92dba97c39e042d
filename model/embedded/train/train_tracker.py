"""Tracker training on short world clips, SAM 2 style (pure: no file I/O).

A clip's objects visible on frame 0 are given to the tracker as mask prompts there (as the video
loop does when a detection spawns an object). On every later frame the tracker propagates them
from its memories (the conditioning frame, the most recent frames, the object pointers), and is
supervised with the ground truth: focal + dice on the mask of visible objects, a binary loss on
the object score (visible or not: occlusions and exits), and L1 between its predicted IoU and the
IoU it actually achieved. Memories are encoded from its own predictions, with gradients, so the
memory encoder and memory attention learn from later frames' losses.

The image trunk is frozen (it belongs to the detector, trained first); the tracker's neck
(`sam2_convs`) and the tracker itself are trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from model.backbone.neck import run_fpn
from model.detector.detector import Detector
from model.embedded.train.data import normalise_images
from model.embedded.train.losses import dice_loss, sigmoid_focal_loss
from model.embedded.train.train_detector import lr_factor
from model.embedded.world import Clip
from model.tracker.memory_bank import MemoryBatch
from model.tracker.tracker import Tracker
from model.tracker.types import ObjectPrompt, TrackerFeatures


@dataclass(frozen=True)
class TrackerSchedule:
    steps: int = 1200
    clip_frames: int = 8
    clips_per_step: int = 2
    lr: float = 5e-4
    min_lr_ratio: float = 0.05
    warmup_steps: int = 50
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    mask_focal: float = 20.0
    mask_dice: float = 5.0  # as for the detector: at 1.0 masks stayed under-confident
    object_score: float = 1.0
    iou: float = 1.0
    bf16: bool = True  # bfloat16 autocast for the network calls; losses in fp32


@dataclass(frozen=True)
class ClipTargets:
    """One clip for tracker training: images (T, 3, S, S) normalised; masks (T, N, S, S) float
    ground truth of the N objects visible on frame 0; visible (T, N) bool."""

    images: torch.Tensor
    masks: torch.Tensor
    visible: torch.Tensor


def clip_targets(clip: Clip) -> ClipTargets | None:
    """Tensors for the objects visible on the first frame; None when it shows none."""
    first = clip.frames[0]
    ids = first.ids.tolist()
    if not ids:
        return None
    t, (h, w) = len(clip.frames), first.image.shape[:2]
    masks = np.zeros((t, len(ids), h, w), np.float32)
    for k, frame in enumerate(clip.frames):
        row = {oid: j for j, oid in enumerate(frame.ids.tolist())}
        for n, oid in enumerate(ids):
            if oid in row:
                masks[k, n] = frame.masks[row[oid]]
    masks_t = torch.from_numpy(masks)
    return ClipTargets(
        images=normalise_images(np.stack([f.image for f in clip.frames])),
        masks=masks_t,
        visible=masks_t.flatten(2).amax(2) > 0,
    )


def tracker_features(detector: Detector, tracker: Tracker, images: torch.Tensor) -> TrackerFeatures:
    """Frozen trunk -> trainable tracker neck -> `TrackerFeatures` with one row per frame."""
    vision = detector.backbone.vision_backbone
    if vision.sam2_convs is None:
        raise ValueError("the config builds no tracker neck (neck.tracker_neck=False)")
    with torch.no_grad():
        trunk = vision.trunk(images)  # T x C x g x g
    return tracker.prepare_features(run_fpn(vision.sam2_convs, trunk, vision.num_levels))


def _frame(features: TrackerFeatures, t: int) -> TrackerFeatures:
    return features.select(torch.tensor([t], device=features.pix.device))


def _memory_batch(
    memories: list[torch.Tensor], pointers: list[torch.Tensor], t: int, num_recent: int
) -> MemoryBatch:
    """Frame 0 as conditioning memory plus the `num_recent` latest frames, and every pointer.

    memories[k], pointers[k]: frame k's (N, C_mem, g, g) memories and (N, C) pointers.
    """
    recent = list(range(max(1, t - num_recent), t))[::-1]  # most recent first
    frames = [0, *recent]
    n = memories[0].shape[0]
    device = memories[0].device
    features = torch.stack([memories[k] for k in frames], dim=1)  # N x S x C_mem x g x g
    offsets = torch.tensor([0] + [t - k for k in recent], device=device).expand(n, -1)
    ptr_frames = list(range(t))[::-1]
    return MemoryBatch(
        features=features,
        offsets=offsets,
        valid=torch.ones(offsets.shape, dtype=torch.bool, device=device),
        pointers=torch.stack([pointers[k] for k in ptr_frames], dim=1),  # N x P x C
        pointer_distances=torch.tensor([float(t - k) for k in ptr_frames], device=device).expand(
            n, -1
        ),
        pointer_valid=torch.ones((n, len(ptr_frames)), dtype=torch.bool, device=device),
    )


@dataclass(frozen=True)
class TrackerTerms:
    total: torch.Tensor
    mask_focal: float
    mask_dice: float
    object_score: float
    iou: float
    mean_iou: float  # achieved mask IoU of visible objects (a progress signal)


def clip_loss(
    detector: Detector, tracker: Tracker, clip: ClipTargets, schedule: TrackerSchedule
) -> TrackerTerms:
    """Run the clip through the tracker (frame 0 prompted) and sum the losses of frames 1..T-1."""
    with torch.autocast(clip.images.device.type, dtype=torch.bfloat16, enabled=schedule.bf16):
        return _clip_loss(detector, tracker, clip, schedule)


def _clip_loss(
    detector: Detector, tracker: Tracker, clip: ClipTargets, schedule: TrackerSchedule
) -> TrackerTerms:
    features = tracker_features(detector, tracker, clip.images)
    num_frames, num_objects = clip.visible.shape
    low = tracker.config.low_res_size
    gt_low = F.interpolate(clip.masks, size=(low, low), mode="area")  # T x N x 4g x 4g
    prompts = [ObjectPrompt(mask=clip.masks[0, n]) for n in range(num_objects)]
    first = tracker.track_step(_frame(features, 0), None, prompts)
    prompt_logits = clip.masks[0][:, None] * 20 - 10  # N x 1 x S x S, as the video loop encodes
    memories = [
        tracker.encode_memory(_frame(features, 0), prompt_logits, first.object_score_logits)
    ]
    pointers = [first.obj_ptr]
    focal = dice = score = iou_l1 = clip.images.new_zeros(())
    ious: list[torch.Tensor] = []
    num_recent = tracker.config.num_maskmem - 1
    for t in range(1, num_frames):
        frame = _frame(features, t)
        out = tracker.track_step(frame, _memory_batch(memories, pointers, t, num_recent))
        visible = clip.visible[t]  # N
        object_scores = out.object_score_logits[:, 0].float()  # N
        score = score + F.binary_cross_entropy_with_logits(object_scores, visible.float())
        if visible.any():
            pred = out.low_res_masks[visible, 0].float().flatten(1)  # V x (4g)^2
            gt = gt_low[t, visible].flatten(1)
            with torch.no_grad():
                hard, gt_hard = pred > 0, gt > 0.5
                inter = (hard & gt_hard).sum(1).float()
                union = (hard | gt_hard).sum(1).float().clamp(min=1)
                achieved = inter / union
            ious.append(achieved)
            iou_l1 = iou_l1 + F.l1_loss(out.iou_scores[visible].float(), achieved)
            # objects judged absent carry a constant placeholder mask (no gradient): their
            # supervision is the object-score term
            judged = object_scores[visible] > 0
            if judged.any():
                pred, gt = pred[judged], gt[judged]
                focal = focal + sigmoid_focal_loss(pred, gt, alpha=-1, gamma=2.0).mean(1).mean()
                dice = dice + dice_loss(pred, gt).mean()
        memories.append(tracker.encode_memory(frame, out.low_res_masks, out.object_score_logits))
        pointers.append(out.obj_ptr)
    steps = max(num_frames - 1, 1)
    total = (
        schedule.mask_focal * focal
        + schedule.mask_dice * dice
        + schedule.object_score * score
        + schedule.iou * iou_l1
    ) / steps
    return TrackerTerms(
        total=total,
        mask_focal=float(focal.detach()) / steps,
        mask_dice=float(dice.detach()) / steps,
        object_score=float(score.detach()) / steps,
        iou=float(iou_l1.detach()) / steps,
        mean_iou=float(torch.cat(ious).mean()) if ious else 0.0,
    )


def tracker_parameters(detector: Detector, tracker: Tracker) -> list[torch.nn.Parameter]:
    """What the tracker phase trains: the tracker and its neck (`sam2_convs`)."""
    neck = detector.backbone.vision_backbone.sam2_convs
    if neck is None:
        raise ValueError("the config builds no tracker neck (neck.tracker_neck=False)")
    return [*tracker.parameters(), *neck.parameters()]


def tracker_step(
    detector: Detector,
    tracker: Tracker,
    optimizer: torch.optim.Optimizer,
    clips: list[ClipTargets],
    schedule: TrackerSchedule,
    step: int,
) -> TrackerTerms:
    """One update on a few clips (losses averaged); the learning rate follows `lr_factor`."""
    factor = lr_factor(step, schedule.steps, schedule.warmup_steps, schedule.min_lr_ratio)
    for group in optimizer.param_groups:
        group["lr"] = schedule.lr * factor
    tracker.train()
    terms = [clip_loss(detector, tracker, clip, schedule) for clip in clips]
    total = torch.stack([t.total for t in terms]).mean()
    optimizer.zero_grad(set_to_none=True)
    total.backward()  # type: ignore[no-untyped-call]  # Tensor.backward is untyped in torch
    torch.nn.utils.clip_grad_norm_(tracker_parameters(detector, tracker), schedule.grad_clip)
    optimizer.step()
    n = len(terms)
    return TrackerTerms(
        total=total.detach(),
        mask_focal=sum(t.mask_focal for t in terms) / n,
        mask_dice=sum(t.mask_dice for t in terms) / n,
        object_score=sum(t.object_score for t in terms) / n,
        iou=sum(t.iou for t in terms) / n,
        mean_iou=sum(t.mean_iou for t in terms) / n,
    )
