"""One frame of the online loop (docs/video.md, "Per frame"), as a function over explicit state.

`run_frame` is called by `VideoTracker` with the frame's backbone features. Its sections follow
the official order: detect -> propagate -> associate -> hot-start / spawn / re-condition ->
occlusion suppression -> memory encoding -> outputs. Every network call is batched over objects;
on CUDA the detector pass and propagation overlap on two streams (model/video/streams.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from model.config import VideoConfig
from model.nn.box_ops import masks_to_boxes
from model.tracker.memory_bank import MemoryBank, MemoryCaps, MemoryEntry, stack_views
from model.tracker.types import ObjectPrompt
from model.types import (
    Concept,
    EndReason,
    FrameTrack,
    ObjectEndedEvent,
)
from model.video.association import (
    Association,
    AssociationThresholds,
    HotStartRule,
    associate,
    cap_new_detections,
    update_hotstart,
)
from model.video.detection_table import keep_detections, not_over
from model.video.frame_io import UserPrompt, publish, user_prompt
from model.video.frame_model import FrameDetections, FrameModel, TrackOutput, eff_iou_score
from model.video.lifecycle import Lifecycle, Track
from model.video.mask_rules import (
    NO_OBJECT_LOGIT,
    drop_sprinkles,
    fill_holes,
    hidden_by_lookalikes,
    memory_non_overlap,
    occlusion_suppression,
    suppress_shrunk,
)
from model.video.object_caps import cap_per_concept, count_capped
from model.video.reanchoring import (
    confirm,
    reach_of,
    reanchor_lost,
    regain_after_gap,
    revive,
    untangle,
    update_anchors,
)
from model.video.streams import side_by_side


@dataclass
class FrameState:
    """The stream state one frame reads and updates (`tracks` is mutated in place)."""

    frame_index: int
    clock_s: float
    after_gap: bool
    image_size: tuple[int, int]  # H, W of the input frame
    tracks: dict[int, Track]
    concepts: Mapping[int, Concept]
    concept_prompts: Mapping[int, object]
    prompts: Mapping[int, UserPrompt]  # object id -> this frame's clicks / box
    caps: MemoryCaps


def run_frame(
    model: FrameModel,
    cfg: VideoConfig,
    life: Lifecycle,
    st: FrameState,
    features: object,
    pts: int | None,
) -> FrameTrack:
    t = st.frame_index
    timings: dict[str, float] = {}
    prompted_ids = sorted(st.prompts)
    propagated = [tr for oid, tr in sorted(st.tracks.items()) if oid not in st.prompts]
    prompts = [user_prompt(st.prompts[o], st.image_size, model.image_size) for o in prompted_ids]

    # --- detector pass beside the tracker: propagate every object with memory, prompt the ones
    #     the user edited (on CUDA the detector runs on a side stream: model/video/streams.py) ---------
    def detector() -> list[FrameDetections]:
        if not st.concepts:
            return []
        with _timed(timings, "detect"):
            return model.detect(features, [st.concept_prompts[c] for c in st.concepts])

    def tracker() -> tuple[TrackOutput, TrackOutput]:
        with _timed(timings, "track"):
            return _propagate(model, features, propagated, t), _prompt(model, features, prompts)

    raw, (prop, user) = side_by_side(model.device, detector, tracker, overlap=cfg.cuda_overlap)
    with _timed(timings, "detect"):
        dets = keep_detections(model.mask_size, model.device, cfg, st.concepts, raw)
    det_bin = dets.logits > 0
    det_shapes = (  # what anchors see of each detection: its box without stray pixels
        drop_sprinkles(det_bin, cfg.fill_hole_area)
        if cfg.reanchor_after > 0 or cfg.hotstart_revive_frames > 0
        else det_bin
    )
    prop_logits = fill_holes(prop.mask_logits, cfg.fill_hole_area)  # M x m x m
    trk_bin = prop_logits > 0
    groups = torch.tensor(
        [tr.group for tr in propagated], dtype=torch.long, device=prop_logits.device
    )
    for j, oid in enumerate(prompted_ids):
        if oid not in st.tracks:  # a new user object; refined ones keep their record
            st.tracks[oid] = Track(
                oid,
                None,
                t,
                float(user.object_score_logits[j].sigmoid()),
                MemoryBank(st.caps),
                st.clock_s,
            )

    # --- association, spawning, hot-start, re-conditioning -------------------------------------
    with _timed(timings, "associate"):
        thresholds = AssociationThresholds(
            cfg.assoc_iou_thresh,
            cfg.trk_assoc_iou_thresh,
            cfg.new_det_thresh,
            cfg.high_conf_thresh,
            cfg.high_iou_thresh,
        )

        def associated(trk_bin: torch.Tensor) -> tuple[Association, list[int]]:
            """The association with the tracks' masks, and the detections that would spawn."""
            a = associate(
                det_bin, dets.scores, dets.groups, trk_bin, groups, thresholds, dets.new_min
            )
            return a, not_over(a.new_dets, det_bin, user.mask_logits > 0, cfg.assoc_iou_thresh)

        assoc, new_dets = associated(trk_bin)
        confident = dets.scores >= dets.new_min  # scores good enough to start an object
        if cfg.untangle_margin > 0 and cfg.reanchor_after > 0 and not st.after_gap:
            order = untangle(
                cfg, propagated, t, assoc, det_shapes, dets.groups, confident, new_dets
            )
            if order is not None:  # look-alikes that crossed traded memories: rows follow them
                prop = TrackOutput._make(x if x is None else x[order] for x in prop)
                prop_logits, trk_bin = prop_logits[order], trk_bin[order]
                assoc, new_dets = associated(trk_bin)
        if cfg.reanchor_after > 0:  # where a detection last confirmed each object
            reach = reach_of(cfg)
            update_anchors(
                propagated, assoc, det_shapes, dets.groups, t, cfg.trk_assoc_iou_thresh, reach
            )
        if st.after_gap:  # objects the tracker lost during the gap, by their last visible mask
            lost = {
                i: tr.last_mask for i, tr in enumerate(propagated) if not bool(trk_bin[i].any())
            }
            regained = regain_after_gap(
                det_bin, dets.groups, new_dets, propagated, lost, cfg.assoc_iou_thresh
            )
        elif cfg.reanchor_after > 0:  # objects no detection matched lately, near where they are
            regained = reanchor_lost(
                cfg, propagated, t, assoc, det_shapes, dets.groups, confident, new_dets
            )
        else:
            regained = {}
        for i, d in regained.items():
            confirm(propagated[i], t, masks_to_boxes(det_shapes[d][None])[0])
        new_dets = [d for d in new_dets if d not in regained.values()]
        wanted = new_dets
        new_dets = list(
            cap_new_detections(new_dets, dets.scores, cfg.max_num_objects - len(st.tracks))
        )
        live = (tr.concept_id for tr in st.tracks.values())  # caps: object_caps.py
        new_dets = list(cap_per_concept(new_dets, dets.scores, dets.groups, st.concepts, live))
        capped = count_capped(wanted, new_dets, dets.groups)
        revived = {}  # detection -> dormant object it brings back
        if life.dormant and not st.after_gap:
            pairs = revive(cfg, life.dormant_tracks, t, det_shapes, dets.groups, new_dets)
            revived = {d: oid for oid, d in pairs.items()}
        ids = [tr.object_id for tr in propagated]
        unmatched = assoc.trk_unmatched.clone()
        unmatched[list(regained)] = False
        if cfg.hotstart_hidden_cover > 0 and life.windows and propagated:  # under a look-alike
            none = torch.zeros_like(trk_bin[0])
            last = torch.stack(
                [none if tr.last_mask is None else tr.last_mask for tr in propagated]
            )
            unmatched &= ~hidden_by_lookalikes(last, trk_bin, groups, cfg.hotstart_hidden_cover)
        hot = update_hotstart(
            life.windows,
            {oid: tr.first_frame for oid, tr in st.tracks.items()},
            t,
            [ids[i] for i in torch.nonzero(unmatched).flatten().tolist()],
            [[ids[i] for i in trks] for trks in assoc.det_to_trks],
            HotStartRule(cfg.hotstart_delay, cfg.hotstart_unmatch_thresh, cfg.hotstart_dup_thresh),
        )
        life.windows = hot.windows
        recondition = dict(regained)
        if cfg.recondition_every_nth_frame > 0 and t % cfg.recondition_every_nth_frame == 0:
            for i, d in assoc.recondition.items():
                if (
                    float(prop.object_score_logits[i]) > cfg.high_conf_thresh
                ):  # a logit (official quirk)
                    recondition.setdefault(i, d)
        removed = {i for i, oid in enumerate(ids) if oid in hot.removed}
        alive = [i for i in range(len(propagated)) if i not in removed]
        recondition = {i: d for i, d in recondition.items() if i not in removed}

    # --- occlusion-based overlap suppression (also hides the object's output this frame) -------
    if alive and cfg.suppress_overlap_occlusion_thresh > 0:
        last = torch.tensor([propagated[i].last_occluded for i in alive], device=prop_logits.device)
        hidden = occlusion_suppression(
            trk_bin[alive], last, groups[alive], cfg.suppress_overlap_occlusion_thresh
        )
    else:
        hidden = torch.zeros(len(alive), dtype=torch.bool)
    for k, i in enumerate(alive):
        if hidden[k] or not bool(trk_bin[i].any()):
            propagated[i].last_occluded = t
    prop_logits[[alive[k] for k in torch.nonzero(hidden).flatten().tolist()]] = NO_OBJECT_LOGIT

    # --- spawn new objects from unmatched confident detections ---------------------------------
    spawned: list[Track] = []
    for d in new_dets:
        box = masks_to_boxes(det_shapes[d][None])[0]
        track = life.spawn(
            revived.get(d), int(dets.groups[d]), t, float(dets.scores[d]), box, st.caps, st.clock_s
        )
        st.tracks[track.object_id] = track
        life.open_window(track)
        spawned.append(track)
    # Re-conditioned objects are re-prompted with their mask, as the official `add_new_mask`
    # (`recondition_reprompt`): memory and object pointer both come from that prompt.
    recond_masks = {
        i: prop_logits[i] > 0 if cfg.recondition_on_trk_masks else det_bin[d]
        for i, d in sorted(recondition.items())
    }
    recond = list(recond_masks) if cfg.recondition_reprompt else []
    with _timed(timings, "track"):
        fresh = _prompt(
            model,
            features,
            [
                ObjectPrompt(mask=mk)
                for mk in [*det_bin[new_dets], *(recond_masks[i] for i in recond)]
            ],
        )

    # --- memory: one batched encoder call for every object that stays --------------------------
    with _timed(timings, "memory"):
        mem_logits = prop_logits.clone()
        for i, mk in recond_masks.items():
            mem_logits[i] = torch.where(mk, 10.0, -10.0)
        mem_logits = suppress_shrunk(mem_logits, groups, cfg.shrink_suppress_thresh)
        if cfg.memory_non_overlap:
            mem_logits = memory_non_overlap(mem_logits, groups)
        present = torch.where((mem_logits > 0).flatten(1).any(1), 10.0, -10.0)
        kept = [i for i in alive if i not in recond]
        memories = _encode(
            model,
            features,
            [
                (mem_logits[kept], present[kept], False),
                _for_memory(user, True),
                _for_memory(fresh, True),
            ],
            cfg.memory_bf16,
        )
        quality = eff_iou_score(prop.object_score_logits, prop.iou_scores).tolist()
        pointers = _cat([prop.pointers[kept], user.pointers, fresh.pointers])
        prompted = [st.tracks[o] for o in prompted_ids] + spawned + [propagated[i] for i in recond]
        for k, track in enumerate([propagated[i] for i in kept] + prompted):
            cond = k >= len(kept) or kept[k] in recondition  # prompts, spawns, re-conditionings
            score = quality[kept[k]] if k < len(kept) else 1.0
            track.bank.add(MemoryEntry(t, memories[k], pointers[k], score, cond))
        owners = [propagated[i] for i in alive] + [st.tracks[o] for o in prompted_ids] + spawned

    # --- hot-start failures end; outputs -------------------------------------------------------
    ended: list[ObjectEndedEvent] = []
    for i in sorted(removed):
        track = st.tracks.pop(ids[i])
        if ids[i] not in hot.duplicates and life.may_rest(track):
            life.rest(track, t)  # its `removed` event waits for `life.expire`
            continue
        reason = EndReason.SUPPRESSED if ids[i] in hot.duplicates else EndReason.REMOVED
        if (event := life.end(track, reason)) is not None:
            ended.append(event)
    ended.extend(life.expire(t, everything=st.after_gap))
    out_logits = prop_logits[alive].clone()
    for k, i in enumerate(alive):
        if i in recondition:
            out_logits[k] = dets.logits[recondition[i]]
    out_logits = torch.cat(
        [out_logits, user.mask_logits, fill_holes(dets.logits[new_dets], cfg.fill_hole_area)]
    )
    out_probs = torch.cat(
        [
            prop.object_score_logits[alive].sigmoid(),
            user.object_score_logits.sigmoid(),
            dets.scores[new_dets],
        ]
    )
    with _timed(timings, "output"):
        objects, started = publish(
            life, st.image_size, st.clock_s, owners, out_logits, out_probs, t
        )
    for track in [tr for tr in st.tracks.values() if life.is_lost(tr, st.clock_s)]:
        if (event := life.end(st.tracks.pop(track.object_id), EndReason.LOST)) is not None:
            ended.append(event)
    height, width = st.image_size
    return FrameTrack(t, pts, width, height, objects, started, tuple(ended), timings, capped)


# --- sections --------------------------------------------------------------------------------


def _propagate(model: FrameModel, features: object, tracks: Sequence[Track], t: int) -> TrackOutput:
    if not tracks:
        return _empty_output(model)
    return model.track(features, stack_views([tr.bank.read(t) for tr in tracks]))


def _prompt(model: FrameModel, features: object, prompts: Sequence[ObjectPrompt]) -> TrackOutput:
    return model.prompt(features, prompts) if prompts else _empty_output(model)


def _empty_output(model: FrameModel) -> TrackOutput:
    m, device = model.mask_size, model.device
    z = torch.zeros(0, device=device)
    return TrackOutput(torch.zeros(0, m, m, device=device), z, z, torch.zeros(0, 0, device=device))


MemoryGroup = tuple[torch.Tensor, torch.Tensor, bool]  # logits (B, H, W), scores (B,), from clicks


def _for_memory(out: TrackOutput, from_clicks: bool) -> MemoryGroup:
    logits = out.mask_logits if out.memory_logits is None else out.memory_logits
    return logits, out.object_score_logits, from_clicks


def _encode(
    model: FrameModel, features: object, groups: Sequence[MemoryGroup], bf16: bool
) -> list[torch.Tensor]:
    """Memories of every group's objects, in order: one encoder call per distinct mask size
    (usually one; two on frames where objects are prompted)."""
    by_size: dict[tuple[int, ...], list[int]] = {}
    for g, (logits, _, _) in enumerate(groups):
        if logits.shape[0]:
            by_size.setdefault(tuple(logits.shape[1:]), []).append(g)
    encoded: dict[int, torch.Tensor] = {}
    for members in by_size.values():
        logits = torch.cat([groups[g][0] for g in members])
        scores = torch.cat([groups[g][1] for g in members])
        clicks = torch.cat([torch.full((groups[g][0].shape[0],), groups[g][2]) for g in members])
        out = model.encode_memory(features, logits, scores, clicks.to(logits.device))
        out = out.to(torch.bfloat16) if bf16 else out  # the official tracker stores bf16
        start = 0
        for g in members:
            encoded[g] = out[start : start + groups[g][0].shape[0]]
            start += groups[g][0].shape[0]
    return [row for g in sorted(encoded) for row in encoded[g]]


def _cat(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """torch.cat that tolerates empty placeholders of another trailing shape."""
    full = [p for p in parts if p.shape[0] > 0]
    return torch.cat(full) if full else parts[0]


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1e3
