"""ONNX Runtime encoders of a Nano-EmoX bundle: sessions created once, run as a small dataflow.

The manifest's ``graphs`` section names each graph's file(s) and its inputs/outputs
(docs/bundle-format.md); ``encoders.order`` gives the run order (visual, audio, facial, adapters).
Every graph takes its inputs by name from the tensors computed so far: the preprocessed
``pixel_values`` / ``frames`` / ``waveforms`` first, then earlier graphs' outputs. The placeholder
embeddings (``frame_embeds``, ``audio_embeds``, ``face_embeds``, ``fusion_embeds``) come out at the end.

Threads are set deliberately: ``intra_op`` = ``n_threads`` or ``default_threads()``, ``inter_op`` = 1,
sequential execution, no spin-waiting and one shared CPU arena (``emox_edge.onnx_session``); the
device comes from ``emox_edge.devices.resolve_device`` (logged fallback).

Every run ends by shrinking the arena (ONNX Runtime's ``memory.enable_memory_arena_shrinkage``): the
chunks no tensor uses any more go back to the system. Without it the arena kept the activations of
the largest graph (CLIP on 8 frames) and grew again on the second clip, fragments of the first not
fitting the second's requests. Measured on the full-size int8 encoders (2 threads, the same clip
three times, two processes each way, AMD EPYC AVX2): peak RSS after three clips 1.85 GB -> 1.41-1.46
GB, resident between clips 1.85 GB -> 1.03-1.08 GB, encoder time +0-5 % (pages are faulted in again).

The per-frame graphs (CLIP, HuBERT, FaceXFormer: a symbolic leading ``frames`` axis, see
``converters.encoders.export``) encode one frame or audio window per run (``FRAMES_PER_RUN``); the
adapters then take the 8 rows together. Activations at once drop to one row's, and speed stays:
measured per graph on the full-size int8 files (2 threads, AMD EPYC AVX2, 4 rounds interleaved,
medians), 8 / 4 / 2 / 1 rows per run: peak activations CLIP 114 / 58 / 30 / 43 MiB, HuBERT 417 / 209 /
101 / 51, FaceXFormer 260 / 133 / 60 / 37; time CLIP 6.31 / 5.95 / 6.41 / 6.04 s, HuBERT 3.48 / 3.54 /
3.45 / 3.56 s, FaceXFormer 1.97 / 2.16 / 2.14 / 2.23 s. In the shipped Nano-EmoX pipeline the clip's
peak RSS fell 2793 -> 2511 MiB (perception +4-5 % then, 9.46-9.85 s -> 9.83-10.35 s, two processes each
way, alternated, with the arena shrunk after every row: see below). Dynamic int8 quantizes each run's
activations with their own scale, so the rows differ from a whole-clip run within the parity gate
(cosine >= 0.9994 against PyTorch at 3 rows per run, as at 8). Bundles exported with fixed shapes run whole, as before. The arena is shrunk after
a graph's last row, not after every row: shrinking after every row faulted its pages in again 24 times
a clip (perception 11.4-12.5 s every row, 10.5-10.9 s last row only, 10.3-11.0 s whole clip per run;
peak RSS 2364-2373 / 2401-2464 / 2607-2610 MiB; shipped pipeline, two processes each, alternated).

Run one row at a time, a per-frame graph keeps each row's outputs by the row's exact input bytes
(``row_cache``): rows seen before (encoded ahead during live capture by ``encode_ahead``, or repeated,
such as the zero audio windows of a clip without sound) are not run again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from emox_edge.bundle.manifest import Bundle
from emox_edge.errors import BadInputError, BundleError
from emox_edge.devices import ResolvedDevice, default_threads, resolve_device
from emox_edge.encoders.row_cache import RowCache, row_key
from emox_edge.onnx_session import create_session

log = logging.getLogger(__name__)

PRECISIONS = ("int8", "fp32")
FRAMES_PER_RUN = 1  # see the module docstring
_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "uint8": np.uint8}


@dataclass
class _Graph:
    name: str
    session: Any
    inputs: list[dict]
    outputs: list[str]
    file: str
    per_frame: bool = False  # a symbolic leading axis on every input: rows may be run in chunks


def per_frame(inputs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a graph's inputs all have a symbolic leading (frames) axis: its rows may run in chunks."""
    return bool(inputs) and all(io.get("shape") and isinstance(io["shape"][0], str) for io in inputs)


class EncoderSuite:
    """Every encoder graph of a bundle, ready to run.

    Args:
        bundle: an opened nano-emox bundle.
        device: "auto" | "cpu" | "cuda" | "metal".
        precision: "int8" or "fp32" (falls back, with a log line, to what the bundle has).
        n_threads: intra-op threads (None: physical cores).
        frames_per_run: rows (frames, audio windows) a per-frame graph encodes in one run; None runs
            a clip's rows at once. Graphs exported with fixed shapes always run whole.

    Raises:
        BundleError: the manifest has no usable ``graphs`` section or names a missing file.
        ValueError: an unknown precision or device.
    """

    def __init__(self, bundle: Bundle, *, device: "str | ResolvedDevice" = "auto", precision: str = "int8",
                 n_threads: int | None = None, frames_per_run: int | None = FRAMES_PER_RUN) -> None:
        if precision not in PRECISIONS:
            raise BadInputError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        if frames_per_run is not None and (isinstance(frames_per_run, bool) or not isinstance(frames_per_run, int)
                                           or frames_per_run < 1):
            raise BadInputError(f"frames_per_run must be an integer >= 1 or None; got {frames_per_run!r}")
        self.frames_per_run = frames_per_run
        self.device: ResolvedDevice = resolve_device(device) if isinstance(device, str) else device
        graphs = bundle.section("graphs")
        order = list(bundle.manifest.get("encoders", {}).get("order") or graphs)
        threads = n_threads or default_threads()
        self.graphs: list[_Graph] = []
        for name in order:
            if name not in graphs:
                raise BundleError(f"{bundle.root}: encoders.order names graph {name!r} missing from 'graphs'")
            entry = graphs[name]
            rel = entry.get(precision)
            if rel is None:
                rel = entry.get("file") or entry.get("fp32")
                log.info("graph %s has no %s file; using %s", name, precision, rel)
            if rel is None:
                raise BundleError(f"{bundle.root}: graph {name!r} names no file")
            path = bundle.path(rel)
            session = create_session(path, device=self.device, n_threads=threads)
            inputs = entry.get("inputs") or [{"name": i.name, "shape": i.shape, "dtype": "float32"} for i in session.get_inputs()]
            outputs = [o["name"] for o in entry.get("outputs", [])] or [o.name for o in session.get_outputs()]
            self.graphs.append(_Graph(name, session, list(inputs), outputs, rel, per_frame(inputs)))
        self._run_options = _shrinking_run_options()
        self.rows = RowCache()
        self.rows_run = 0  # rows the row-at-a-time graphs have run (those found in ``rows`` are not)
        log.info("encoders: %s on %s, %d intra-op threads, %s", ", ".join(g.name for g in self.graphs),
                 self.device.name, threads, precision)

    def run(self, tensors: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Run every graph; returns (all tensors by name, milliseconds per graph).

        Raises:
            ValueError: a graph input is neither given nor produced by an earlier graph.
        """
        values: dict[str, np.ndarray] = dict(tensors)
        timings: dict[str, float] = {}
        for graph in self.graphs:
            feed = {}
            for io in graph.inputs:
                if io["name"] not in values:
                    raise BundleError(f"graph {graph.name!r} needs input {io['name']!r}; have {sorted(values)}")
                feed[io["name"]] = _conform(values[io["name"]], io)
            t0 = time.perf_counter()
            out = self._run_graph(graph, feed)
            timings[graph.name] = (time.perf_counter() - t0) * 1000.0
            values.update(zip(graph.outputs, out))
        return values, timings

    def encode_ahead(self, tensors: Mapping[str, np.ndarray]) -> int:
        """Encode the rows of ``tensors`` (preprocessed inputs, e.g. one frame's ``pixel_values`` and
        ``frames``) with every row-at-a-time graph whose inputs they hold, keeping the outputs for the
        ``run`` that will need them (``row_cache``). Returns the rows run (those already kept are not)."""
        ran = 0
        for graph in self.graphs:
            if self._by_row(graph) and all(io["name"] in tensors for io in graph.inputs):
                feed = {io["name"]: _conform(tensors[io["name"]], io) for io in graph.inputs}
                ran += self._cached_rows(graph, feed, None)[1]
        return ran

    def encodes_by_row(self) -> bool:
        """Whether some graph runs one row at a time (``encode_ahead`` has work it can do)."""
        return any(self._by_row(g) for g in self.graphs)

    def _by_row(self, graph: _Graph) -> bool:
        return graph.per_frame and self.frames_per_run == 1

    def _run_graph(self, graph: _Graph, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        step = self.frames_per_run
        if not graph.per_frame or step is None:
            return graph.session.run(graph.outputs, feed, self._run_options)
        if self._by_row(graph):
            return self._cached_rows(graph, feed, self._run_options)[0]
        # the arena is shrunk after the graph's last run only: earlier rows keep its chunks for the next
        return run_in_rows(graph.session, graph.outputs, feed, step, last_options=self._run_options)

    def _cached_rows(self, graph: _Graph, feed: Mapping[str, np.ndarray],
                     last_options: Any) -> tuple[list[np.ndarray], int]:
        """``run_in_rows`` at one row per run, each distinct row run once unless kept (``row_cache``);
        returns the outputs and the rows run. ``last_options`` go with the last run that happens."""
        keys, found, todo = [], {}, {}
        for i in range(len(next(iter(feed.values())))):
            row = {k: v[i:i + 1] for k, v in feed.items()}
            key = row_key(graph.name, row)
            keys.append(key)
            if key not in found and key not in todo:
                kept = self.rows.get(key)
                if kept is None:
                    todo[key] = row
                else:
                    found[key] = kept
        for j, (key, row) in enumerate(todo.items()):
            found[key] = graph.session.run(graph.outputs, row, last_options if j == len(todo) - 1 else None)
            self.rows.put(key, found[key])
        self.rows_run += len(todo)
        return [np.concatenate([found[key][k] for key in keys]) for k in range(len(graph.outputs))], len(todo)

    def close(self) -> None:
        self.graphs = []
        self.rows.clear()


def run_in_rows(session, outputs: Sequence[str], feed: Mapping[str, np.ndarray], step: int, *,
                last_options: Any = None) -> list[np.ndarray]:
    """Run ``session`` on ``step`` rows of the leading axis of ``feed`` at a time; outputs joined.

    ``last_options`` (``RunOptions``) go with the last run only. A graph whose leading axis is not
    really symbolic (a size traced as a constant) raises ONNX Runtime's error here."""
    starts = range(0, len(next(iter(feed.values()))), step)
    parts = [session.run(list(outputs), {k: v[i:i + step] for k, v in feed.items()},
                         last_options if i == starts[-1] else None) for i in starts]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(outputs))]


def _shrinking_run_options():
    """``RunOptions`` that hand the CPU arena's free chunks back after every run (the module docstring);
    a GPU's own arena is left as it is (its memory is not the host's)."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def _conform(array: np.ndarray, io: Mapping[str, Any]) -> np.ndarray:
    """Cast to the graph's dtype and add/drop a leading batch axis of 1 to match its rank."""
    array = np.asarray(array, dtype=_DTYPES.get(str(io.get("dtype", "float32")), np.float32))
    rank = len(io.get("shape") or array.shape)
    while array.ndim < rank:
        array = array[None]
    while array.ndim > rank and array.shape[0] == 1:
        array = array[0]
    return np.ascontiguousarray(array)


def placeholder_embeddings(values: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named embeddings as float32 ``[slots, width]`` (a leading batch of 1 dropped)."""
    out = {}
    for name in names:
        if name not in values:
            raise BundleError(f"the encoders produced no {name!r}; have {sorted(values)}")
        array = np.asarray(values[name], np.float32)
        out[name] = array[0] if array.ndim == 3 and array.shape[0] == 1 else array
    return out
