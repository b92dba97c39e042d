"""H.264 into an mp4 / mkv / mov file; back-pressure by default, so no frame is ever lost."""

from __future__ import annotations

import os
from pathlib import Path

import av
import av.container
import av.error

from streamer.outputs.base import EncoderConfig, OutputError, OverflowPolicy
from streamer.outputs.encoder import EncodingOutput

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


class FileOutput(EncodingOutput):
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        encoder: EncoderConfig | None = None,
        policy: OverflowPolicy = OverflowPolicy.BLOCK,
        queue_size: int = 8,
    ) -> None:
        self.path = Path(path)
        self.format = CONTAINERS.get(self.path.suffix.lower())
        if self.format is None:
            raise OutputError(
                f"cannot write {self.path.name}: use one of {', '.join(sorted(CONTAINERS))}"
            )
        if not self.path.parent.is_dir():
            raise OutputError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        super().__init__(
            name=f"file {self.path}", encoder=encoder or EncoderConfig(), policy=policy,
            queue_size=queue_size,
        )  # fmt: skip

    def _open_container(self) -> av.container.OutputContainer:
        options = {"movflags": "+faststart"} if self.format in ("mp4", "mov") else {}
        try:
            return av.open(str(self.path), "w", format=self.format, options=options)
        except av.error.FFmpegError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror}") from None
