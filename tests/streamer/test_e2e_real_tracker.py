"""RTSP kill-and-restart through the Engine with the REAL `model.video.video_tracker.VideoTracker`.

The scripted-tracker version (test_e2e.py) proves the plumbing; here the stream's IDs come from
the real loop: `mark_gap`, the stream clock and the gap tolerance, detection <-> track
association, spawning, hot-start, re-conditioning, the per-object memory banks and the
lifecycle events. The model is the tiny `Sam3` with random weights: its backbone, tracker
(memory attention, mask decoder), prompt path and memory encoder all run on every frame. Random
weights cannot see objects, so two parts are scripted in `ColourWorld` (a `Sam3FrameModel`):

* the detector head: a concept is a colour name and its detection is that colour's pixels;
* what propagation *sees*: the real tracker runs, then its mask is replaced by the pixels of the
  colour this object's latest memory holds. A random tracker's masks are noise (|logit| ~ 0.05,
  a position pattern, or "absent"): with them every frame spawns new IDs, so nothing about
  keeping IDs could be tested. The colour is recalled from the real memory tensors the loop
  stored (the model notes the colour under each mask it encodes, keyed by the memory's bytes).

The served video is the RTSP server's `/objects` mount: a red ball wandering slowly and a still
blue square on grey, so there are two distinct objects for the loop to keep apart.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model import VideoTracker, build_sam3
from model.config import VideoConfig
from model.sam3 import Sam3
from model.tracker.memory_bank import MemoryBatch
from model.types import Concept
from model.video.frame_model import FrameDetections, TrackOutput
from model.video.sam3_frame_model import Sam3FrameModel
from protocols import events as ev
from protocols.codec import decode
from streamer.engine import Engine, EngineConfig, StreamSpec
from streamer.session import Session, StreamState
from tests.fakes import COLOURS, TOLERANCE, eventually
from tests.streamer.conftest import RtspServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
T = TypeVar("T")

DETECTION_SCORE = 0.95  # above new_det_thresh (0.7) and high_conf_thresh (0.8)
LOGIT = 10.0  # scripted masks: +10 inside, -10 outside
REMEMBERED = 512  # memories whose colour is kept (a few hundred frames of two objects)


class ColourWorld(Sam3FrameModel):
    """The tiny Sam3's networks, with a colour detector head and colour-following propagation."""

    def __init__(self, model: Sam3) -> None:
        super().__init__(model)
        self._images: dict[int, np.ndarray] = {}  # id(features) -> H x W x 3 frame, this batch
        # memory fingerprint -> (when encoded, RGB under its mask or None: object absent)
        self._colours: OrderedDict[bytes, tuple[int, np.ndarray | None]] = OrderedDict()
        self._encoded = 0
        self.blind_tracks = 0  # the next this many propagations see nothing

    def encode_images(self, images: Sequence[np.ndarray]) -> list[object]:
        features = super().encode_images(images)
        self._images = {id(f): image for f, image in zip(features, images, strict=True)}
        return features

    def encode_concept(self, concept: Concept) -> object:
        if concept.text not in COLOURS:
            raise ValueError(
                f"ColourWorld knows the colours {sorted(COLOURS)}, got {concept.text!r}"
            )
        return np.array(COLOURS[concept.text], dtype=np.int16)

    def detect(self, features: object, concepts: Sequence[object]) -> list[FrameDetections]:
        """One query per concept: its colour's pixels, or an empty mask with score 0."""
        image = self._images[id(features)]
        out = []
        for colour in concepts:
            assert isinstance(colour, np.ndarray)
            grid = self._on_grid(_colour_mask(image, colour))  # m x m bool
            score = DETECTION_SCORE if bool(grid.any()) else 0.0
            out.append(
                FrameDetections(
                    scores=torch.tensor([score]),
                    mask_logits=_logits(grid)[None],  # 1 x m x m
                    boxes=torch.tensor([_normalised_box(grid)]),  # 1 x 4
                )
            )
        return out

    def track(self, features: object, memory: MemoryBatch) -> TrackOutput:
        """The real tracker runs (pointers, IoU scores); its masks become the recalled colour's."""
        out = super().track(features, memory)
        image = self._images[id(features)]
        recalled = [self._recall(memory, b) for b in range(len(out.mask_logits))]
        if self.blind_tracks > 0:
            self.blind_tracks -= 1
            recalled = [None] * len(recalled)  # every object looks absent
        grids = torch.stack([self._on_grid(_colour_mask(image, c)) for c in recalled])  # B x m x m
        present = torch.where(grids.flatten(1).any(1), LOGIT, -LOGIT)
        return out._replace(
            mask_logits=_logits(grids).to(out.mask_logits),
            object_score_logits=present.to(out.object_score_logits),
        )

    def encode_memory(
        self,
        features: object,
        mask_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        from_prompt: torch.Tensor,
    ) -> torch.Tensor:
        memories = super().encode_memory(features, mask_logits, object_score_logits, from_prompt)
        image = self._images[id(features)]
        h, w = image.shape[:2]
        masks = (
            F.interpolate(mask_logits[:, None].float(), size=(h, w), mode="nearest")[:, 0] > 0
        )  # B x H x W
        for row, mask, score in zip(memories, masks, object_score_logits, strict=True):
            colour = (
                np.median(image[mask.numpy()], axis=0) if score > 0 and bool(mask.any()) else None
            )
            self._colours[_fingerprint(row)] = (self._encoded, colour)
            self._encoded += 1
            if len(self._colours) > REMEMBERED:
                self._colours.popitem(last=False)
        return memories

    # --- helpers ---------------------------------------------------------------------------------

    def _recall(self, memory: MemoryBatch, b: int) -> np.ndarray | None:
        """The colour of object b's most recent memory that saw it (None: none did)."""
        latest, recalled = -1, None
        for slot in torch.nonzero(memory.valid[b]).flatten().tolist():
            encoded, colour = self._colours.get(_fingerprint(memory.features[b, slot]), (-1, None))
            if colour is not None and encoded > latest:
                latest, recalled = encoded, colour
        return recalled

    def _on_grid(self, mask: np.ndarray) -> torch.Tensor:
        """H x W bool -> m x m bool on the tracker grid (cells at least half covered)."""
        m = self.mask_size
        cover = F.interpolate(torch.from_numpy(mask).float()[None, None], size=(m, m), mode="area")
        return cover[0, 0] >= 0.5


def _colour_mask(image: np.ndarray, colour: np.ndarray | None) -> np.ndarray:
    if colour is None:
        return np.zeros(image.shape[:2], dtype=bool)
    distance = np.abs(image.astype(np.int16) - colour.astype(np.int16))  # H x W x 3
    mask: np.ndarray = np.all(distance <= TOLERANCE, axis=-1)  # H x W
    return mask


def _logits(masks: torch.Tensor) -> torch.Tensor:
    return torch.where(masks, LOGIT, -LOGIT)


def _normalised_box(grid: torch.Tensor) -> list[float]:
    if not bool(grid.any()):
        return [0.0, 0.0, 0.0, 0.0]
    ys, xs = torch.nonzero(grid, as_tuple=True)
    m = grid.shape[-1]
    return [
        float(xs.min()) / m,
        float(ys.min()) / m,
        float(xs.max() + 1) / m,
        float(ys.max() + 1) / m,
    ]


def _fingerprint(memory: torch.Tensor) -> bytes:
    """The memory's bytes as the loop stores them (bfloat16, official) -> a short digest."""
    raw = memory.detach().to(torch.bfloat16).view(torch.int16).cpu().numpy().tobytes()
    return hashlib.blake2b(raw, digest_size=16).digest()


@pytest.fixture
def colour_world() -> ColourWorld:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return ColourWorld(build_sam3("tiny", device="cpu").eval())


class GapRecorder(VideoTracker):
    """The real tracker, noting the gaps the engine reports; with `blind_after_gap` the
    propagation right after each gap sees nothing (a tracker whose memories no longer match
    the scene), so only the detector can bring an object back."""

    def __init__(self, world: ColourWorld, config: VideoConfig, blind_after_gap: bool) -> None:
        super().__init__(world, config)
        self.world = world
        self.blind_after_gap = blind_after_gap
        self.gaps: list[float] = []

    def mark_gap(self, seconds: float) -> None:
        self.gaps.append(seconds)
        if self.blind_after_gap:
            self.world.blind_tracks += 1
        super().mark_gap(seconds)


@dataclass(frozen=True)
class Outage:
    """What one kill-and-restart run left behind."""

    tracker: GapRecorder
    session: Session
    errors: dict[str, BaseException]
    before: dict[int | None, int]  # concept id -> object id when the server was killed
    after: dict[int | None, int]  # ... once the restarted stream shows every concept again
    events: Sequence[object]  # every decoded event, in order


def object_by_concept(session: Session) -> dict[int | None, int]:
    """concept id -> the object id the session shows for it (one object per colour here)."""
    return {info.concept_id: object_id for object_id, info in session.objects.items()}


async def run_outage(
    server: RtspServer,
    world: ColourWorld,
    colours: tuple[str, ...],
    *,
    tolerance_s: float,
    down_s: float,
    blind_after_gap: bool = False,
) -> Outage:
    """One stream of /objects with a concept per colour through a real tracker: once every
    colour has its object and 20 frames went through the model, kill the server, keep it down
    `down_s`, restart it, wait for 10 frames and every colour again, then stop gracefully."""
    trackers: list[GapRecorder] = []

    def tracker_factory() -> VideoTracker:  # the CLI's seam: one VideoTracker per stream
        config = VideoConfig(gap_tolerance_s=tolerance_s)
        trackers.append(GapRecorder(world, config, blind_after_gap))
        return trackers[-1]

    engine = Engine(tracker_factory, config=EngineConfig(status_interval_s=0.1))
    async with engine:
        events = engine.hub.subscribe(maxsize=100_000)
        concepts = tuple(Concept(colour) for colour in colours)
        session = await engine.add_stream(StreamSpec(server.url("/objects"), concepts=concepts))
        everything = len(colours)
        await eventually(
            lambda: session.stats.frames_out > 20 and len(session.objects) == everything, 40
        )
        before = object_by_concept(session)
        server.kill()
        await eventually(lambda: session.state is not StreamState.LIVE, within_s=10)
        await asyncio.sleep(down_s)
        server.start()
        restarted_at = session.stats.frames_out
        await eventually(
            lambda: (
                session.state is StreamState.LIVE
                and session.stats.frames_out > restarted_at + 10
                and len(session.objects) == everything
            ),
            within_s=40,
        )
        after = object_by_concept(session)
    received = [decode(e.data) async for e in events]
    return Outage(trackers[0], session, engine.errors, before, after, received)


def of_type(events: Sequence[object], kind: type[T]) -> list[T]:
    return [e for e in events if isinstance(e, kind)]


def assert_reported_and_ended_cleanly(run: Outage) -> None:
    """The source reconnected, clients saw `reconnecting`, and the stream ended gracefully:
    every object still live at the end ends with `stream_ended`."""
    assert run.session.stats.reconnects >= 1
    states = [e.state for e in of_type(run.events, ev.StreamStatus)]
    assert ev.StreamState.RECONNECTING in states and states[-1] is ev.StreamState.ENDED
    final = [
        e for e in of_type(run.events, ev.ObjectEnded) if e.reason is ev.EndReason.STREAM_ENDED
    ]
    assert sorted(e.object_id for e in final) == sorted(run.after.values())
    assert run.session.state is StreamState.ENDED and not run.errors


async def test_restart_within_the_gap_tolerance_keeps_object_ids(
    rtsp_server: RtspServer, colour_world: ColourWorld
) -> None:
    run = await run_outage(rtsp_server, colour_world, ("red", "blue"), tolerance_s=5.0, down_s=1.0)
    assert set(run.before) == {0, 1}  # red and blue, one object each
    assert run.after == run.before  # the same objects keep their IDs
    started = [e.object_id for e in of_type(run.events, ev.ObjectStarted)]
    assert sorted(started) == sorted(run.before.values())  # no ID was born anew
    for result in of_type(run.events, ev.FrameResult):  # and no frame swapped them
        assert {o.concept_id: o.object_id for o in result.objects}.items() <= run.before.items()
    assert run.tracker.gaps and all(1.0 <= gap < 5.0 for gap in run.tracker.gaps)
    assert_reported_and_ended_cleanly(run)
    assert {e.reason for e in of_type(run.events, ev.ObjectEnded)} == {ev.EndReason.STREAM_ENDED}


async def test_restart_after_the_gap_tolerance_loses_the_objects_and_starts_new_ones(
    rtsp_server: RtspServer, colour_world: ColourWorld
) -> None:
    run = await run_outage(rtsp_server, colour_world, ("red", "blue"), tolerance_s=1.0, down_s=2.0)
    assert run.tracker.gaps and max(run.tracker.gaps) > 1.0
    old, new = set(run.before.values()), set(run.after.values())
    assert set(run.after) == set(run.before) == {0, 1} and not old & new
    assert min(new) > max(old)  # IDs increase, never reused
    lost = [
        e.object_id for e in of_type(run.events, ev.ObjectEnded) if e.reason is ev.EndReason.LOST
    ]
    assert sorted(lost) == sorted(old)
    started = [e.object_id for e in of_type(run.events, ev.ObjectStarted)]
    assert sorted(started) == sorted(old | new)
    assert_reported_and_ended_cleanly(run)


async def test_after_a_gap_the_detector_brings_back_an_object_the_tracker_lost(
    rtsp_server: RtspServer, colour_world: ColourWorld
) -> None:
    """Propagation sees nothing on the first frame after the gap: the still blue square keeps
    its ID only through the loop's re-association (its detection overlaps its last mask)."""
    run = await run_outage(
        rtsp_server, colour_world, ("blue",), tolerance_s=5.0, down_s=1.0, blind_after_gap=True
    )
    assert colour_world.blind_tracks == 0  # the blind propagation did happen
    assert run.tracker.gaps and all(gap < 5.0 for gap in run.tracker.gaps)
    assert run.after == run.before
    assert [e.object_id for e in of_type(run.events, ev.ObjectStarted)] == list(run.before.values())
    assert_reported_and_ended_cleanly(run)
