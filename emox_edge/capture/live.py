"""Live sources: network streams decoded as they arrive, and camera/microphone capture cut into clips."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator

import numpy as np

from emox_edge.errors import BadInputError
from emox_edge.capture.decode import DecodeLoss, decode_packet, display_size, open_container
from emox_edge.capture.segment import LiveSegmenter, Segmentation
from emox_edge.capture.base import Source, empty_frames
from emox_edge.media import SAMPLE_RATE, Clip
from emox_edge.preprocess.frames import pick_instants
from emox_edge.preprocess.resample import downmix

AUDIO_GRACE_S = 0.3  # how long a clip may wait for the microphone's last block (blocks arrive after their time)

log = logging.getLogger(__name__)


class StreamSource(Source):
    """A network stream (RTSP/HTTP/...) decoded incrementally and cut live."""

    live = True

    def __init__(self, url: str, *, segmentation: Segmentation, max_side: int | None, model_size: int = 224,
                 timeout: float = 10.0) -> None:
        self.url = url
        self.name = url
        self.segmentation = segmentation
        self.max_side = max_side
        self.model_size = model_size
        try:
            self._container = open_container(url, timeout=timeout)
        except (ValueError, FileNotFoundError, OSError) as exc:
            raise ConnectionError(f"stream {url} could not be opened: {exc}") from exc
        self.loss = DecodeLoss()  # undecodable packets are skipped and counted, not fatal

    def stats(self) -> dict[str, Any]:
        return self.loss.to_dict()

    def clips(self) -> Iterator[Clip]:
        import av

        c = self._container
        vstream = c.streams.video[0] if c.streams.video else None
        astream = c.streams.audio[0] if c.streams.audio else None
        if vstream is None and astream is None:
            raise BadInputError(f"{self.url}: the stream has neither video nor audio")
        resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
        frames: list[tuple[float, np.ndarray, np.ndarray]] = []
        audio_parts: list[np.ndarray] = []
        audio_t0 = 0.0  # stream time of the first sample in audio_parts
        segmenter = LiveSegmenter(self.segmentation)
        size = None
        now = 0.0
        streams = [s for s in (vstream, astream) if s is not None]

        def audio_between(start: float, end: float) -> np.ndarray:
            audio = np.concatenate(audio_parts) if audio_parts else np.zeros(0, np.float32)
            lo = int(round((start - audio_t0) * SAMPLE_RATE))
            hi = int(round((end - audio_t0) * SAMPLE_RATE))
            return audio[max(lo, 0) : max(hi, 0)]

        def emit(spans):
            nonlocal frames
            for start, end in spans:
                chosen = [f for f in frames if start <= f[0] < end]
                frames = [f for f in frames if f[0] >= end]  # let the decoded frames go once stacked
                if chosen:
                    fr = np.stack([f[1] for f in chosen]); model = np.stack([f[2] for f in chosen])
                    times = np.asarray([f[0] for f in chosen])
                else:
                    (fr, times), model = empty_frames(), None
                del chosen
                clip = Clip(frames=fr, frame_times=times, audio=np.ascontiguousarray(audio_between(start, end)),
                            start=start, end=end, source=self.name, model_frames=model)
                del fr, model
                yield clip
                del clip  # hold nothing of a clip handed out

        base: float | None = None  # stream time of the first decoded frame: our time 0
        latest: dict[int, float] = {}  # per stream: time up to which it has delivered
        frame_s = 1.0 / float(vstream.average_rate) if vstream is not None and vstream.average_rate else 0.04
        try:
            for packet in c.demux(*streams):
                kind = "video" if packet.stream is vstream else "audio"
                for frame in decode_packet(packet, self.loss, kind):
                    t = float(frame.time) if frame.time is not None else None
                    if base is None and t is not None:
                        base = t
                    t = now if t is None else t - base
                    if packet.stream is vstream:
                        if size is None:
                            size = display_size(frame.width, frame.height, self.max_side)
                        frames.append((t, frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray(),
                                       frame.reformat(width=self.model_size, height=self.model_size, format="rgb24", interpolation="BILINEAR").to_ndarray()))
                    else:
                        if not audio_parts:
                            audio_t0 = t
                        for out in resampler.resample(frame):
                            audio_parts.append(downmix(out.to_ndarray()))
                    length = frame_s if packet.stream is vstream else frame.samples / float(frame.sample_rate or SAMPLE_RATE)
                    latest[packet.stream.index] = max(latest.get(packet.stream.index, 0.0), t + length)
                    now = max(now, t + length)
                if len(latest) < len(streams):
                    continue
                watermark = min(latest.values())  # every stream has delivered up to here
                audio_fn = (lambda s, w=watermark: audio_between(s, w)) if astream is not None else None
                yield from emit(segmenter.poll(watermark, audio_fn))
        except av.error.FFmpegError as exc:
            raise ConnectionError(f"stream {self.url} failed: {exc}") from exc
        finally:
            if self.loss.total:
                log.warning("%s: %s", self.url, self.loss.describe())
        yield from emit(segmenter.flush(now))

    def close(self) -> None:
        self._container.close()


class LiveSource(Source):
    """A camera and/or microphone cut into clips as they are captured.

    When the consumer is slower than real time, only the newest closed span is turned into a clip;
    the skipped ones are counted in ``stats()["skipped_clips"]`` (live analysis favours recency).

    Memory: the camera keeps what the newest closed span can need (``LiveSegmenter.history_s``: two
    4 s windows + 1 s by default, not 30 s) and lets frames before the segmenter's cursor go as soon
    as a poll moves it; frames are downscaled to ``max_side`` in the camera thread. The source keeps
    no reference to a clip once it is handed out (see docs/runtime.md, "Live memory").

    Clips sample their frames evenly in time (``Clip.even_in_time``). With ``encode_ahead`` set, the
    frames a fixed window will sample are handed to the encoders as they arrive, while the consumer
    waits for the window to close.

    Args:
        camera, mic: the devices (None: not used).
        segmentation: how clips are cut.
        max_side: long side of the camera frames kept (None: as captured).
        history_s: seconds of camera frames kept, exactly (None: sized from ``segmentation``, and
            frames no future clip can use are let go early).
        camera_factory, mic_factory: OS-edge replacements (tests, benchmarks).
        poll_s: pause between polls while no span has closed.
    """

    live = True

    def __init__(
        self,
        *,
        camera: int | None,
        mic: int | str | bool | None,
        segmentation: Segmentation,
        max_side: int | None = 640,
        history_s: float | None = None,
        camera_factory: Callable[[int], Any] | None = None,
        mic_factory: Callable[..., Any] | None = None,
        poll_s: float = 0.05,
    ) -> None:
        from emox_edge.capture.camera import CameraReader
        from emox_edge.capture.microphone import MicrophoneReader

        self._clock = time.monotonic
        self.t0 = self._clock()
        self.segmentation = segmentation
        self.poll_s = poll_s
        self.skipped = 0
        self.camera = None
        self.mic = None
        self._segmenter = LiveSegmenter(segmentation)
        self._release = history_s is None  # sized from the segmentation: frames before its cursor go early
        history_s = self._segmenter.history_s() if history_s is None else history_s
        parts = []
        try:
            if camera is not None:
                self.camera = CameraReader(camera, capture_factory=camera_factory, clock=self._clock,
                                           max_side=max_side, history_s=history_s)
                parts.append(f"camera:{camera}")
            if mic is not None and mic is not False:
                device = None if mic is True else mic
                self.mic = MicrophoneReader(device, stream_factory=mic_factory, clock=self._clock)
                parts.append(f"mic:{'default' if device is None else device}")
        except BaseException:
            self.close()
            raise
        self.name = "+".join(parts)
        self._closed = False
        self._ahead: tuple[Callable[[list[np.ndarray]], Any], int] | None = None
        self._streamed: tuple[float, float] | None = None  # the window whose picks are being encoded
        self._sent: set[int] = set()  # its picks handed to the encoders
        self.encoded_ahead = 0  # frames encoded before their clip closed

    def encode_ahead(self, encode: Callable[[list[np.ndarray]], Any], picks: int) -> bool:
        """While a fixed window is being captured, hand ``encode`` (``BundleKind.encode_ahead``) each of
        the ``picks`` frames its clip will sample (``preprocess.time_picks``) as soon as it has arrived,
        one per poll, so little encoding is left when the window closes.

        A consumer that comes back after windows have closed joins the window being captured instead
        of taking the newest closed one (the closed ones count as skipped): same clips per minute on a
        machine slower than real time, but the answer is fresher and its encoding partly done.
        Returns whether streaming is on (fixed windows and a camera only)."""
        if self.segmentation.mode != "fixed" or self.camera is None or picks < 1:
            return False
        self._ahead = (encode, int(picks))
        return True

    def _now(self) -> float:
        return self._clock() - self.t0

    def _audio(self, start: float, end: float, *, mark: bool = True) -> np.ndarray:
        if self.mic is None or self.mic.t0 is None:
            return np.zeros(0, np.float32)
        offset = self.mic.t0 - self.t0
        return self.mic.audio(start - offset, end - offset, mark=mark)

    def clips(self) -> Iterator[Clip]:
        try:
            while not self._closed:
                if self.mic is not None:
                    self.mic.check()
                now = self._now()
                audio_fn = (lambda s: self._audio(s, now, mark=False)) if self.mic is not None else None
                spans = self._segmenter.poll(now, audio_fn)
                if spans and self._ahead is not None:
                    spans = self._streamed_span(spans)
                clip = self._clip(spans[-1]) if spans else None
                if self._release and self.camera is not None:  # no later span starts before the cursor
                    self.camera.release_before(self.t0 + self._segmenter.cursor)
                if not spans:
                    if not (self._ahead is not None and self._encode_next()):
                        time.sleep(self.poll_s)
                    continue
                if len(spans) > 1:
                    self.skipped += len(spans) - 1
                    log.info("analysis is slower than real time: skipped %d clip(s), analysing the newest", len(spans) - 1)
                if clip is not None:
                    yield clip
                    del clip  # the consumer is done with it: hold nothing while the next span fills
        finally:
            self.close()

    def _streamed_span(self, spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """The closed window whose picks were encoded ahead, or none (join the one being captured)."""
        if self._streamed in spans:
            skipped = len(spans) - 1
            spans = [self._streamed]
        else:
            skipped = len(spans)
            spans = []
        if skipped:
            self.skipped += skipped
            log.info("analysis is slower than real time: skipped %d clip(s), joining the one being captured", skipped)
        return spans

    def _encode_next(self) -> bool:
        """Hand the next pick of the window being captured to the encoders if its frame has arrived;
        returns whether one was encoded."""
        encode, picks = self._ahead
        start = self._segmenter.cursor
        end = start + self.segmentation.window_s
        if self._streamed != (start, end):
            self._streamed, self._sent = (start, end), set()
        if len(self._sent) >= picks:
            return False
        held = self.camera.held_between(self.t0 + start, self.t0 + end)  # as ``_clip`` will take them
        if not held:
            return False
        times = np.asarray([t for t, _ in held], np.float64) - self.t0  # as ``_clip`` computes them
        found = np.searchsorted(times, pick_instants(start, end, picks), side="left")
        for k in range(picks):
            if k in self._sent:
                continue
            if found[k] >= len(held):
                return False  # its frame has not arrived yet, nor have later picks'
            self._sent.add(k)
            if any(found[j] == found[k] for j in self._sent if j != k):
                continue  # the same frame as an earlier pick (a stalled camera)
            try:
                encode([held[found[k]][1]])
            except Exception as exc:  # the clip is still analysed when it closes, from scratch
                log.warning("encoding ahead failed, stopping it: %s: %s", type(exc).__name__, exc)
                self._ahead = None
                return False
            self.encoded_ahead += 1
            return True
        return False

    def _await_audio(self, end: float) -> None:
        """Wait (at most ``AUDIO_GRACE_S``) until the microphone has delivered samples up to ``end``:
        its blocks arrive a little after the moment they cover, and a clip must not end in zeros."""
        mic = self.mic
        if mic is None or mic.t0 is None:
            return
        need = int(round((end - (mic.t0 - self.t0)) * mic.sample_rate))
        deadline = time.monotonic() + AUDIO_GRACE_S
        while mic.ring.written < need and time.monotonic() < deadline and not self._closed:
            time.sleep(0.01)

    def _clip(self, span: tuple[float, float]) -> Clip | None:
        """The clip of ``span`` from the camera's history and the microphone's ring (None: nothing)."""
        start, end = span
        if self.camera is not None:
            frames, times = self.camera.take(self.t0 + start, self.t0 + end)
            times = times - self.t0
        else:
            frames, times = empty_frames()
        self._await_audio(end)
        audio = self._audio(start, end)
        if frames.shape[0] == 0 and not np.any(audio):
            log.warning("%s delivered nothing for %.1f-%.1f s", self.name, start, end)
            return None
        return Clip(frames=frames, frame_times=times, audio=audio, start=start, end=end, source=self.name,
                    even_in_time=True)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"skipped_clips": self.skipped}
        if self._ahead is not None or self.encoded_ahead:
            out["frames_encoded_ahead"] = self.encoded_ahead
        if self.camera is not None:
            out.update(frames_read=self.camera.frames_read, frames_dropped=self.camera.dropped,
                       camera_reconnects=self.camera.reconnects, camera_history_s=round(self.camera.history_s, 2),
                       camera_frames_held_peak=self.camera.peak_held)
        if self.mic is not None:
            out.update(audio_overflows=self.mic.overflows, audio_overwritten=self.mic.ring.overwritten,
                       mic_reconnects=self.mic.reconnects)
        return out

    def close(self) -> None:
        self._closed = True
        if self.camera is not None:
            self.camera.close()
        if self.mic is not None:
            self.mic.close()
