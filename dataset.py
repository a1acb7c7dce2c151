"""Training data: class folders -> files -> cached YAMNet embeddings; the by-file split and folds.

Folder scanning, splitting and the cache are TF-free; only `embed_files` needs a loaded YAMNet.
"""

import hashlib
import os
import random
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atomic_write import atomic_output
from audio_util import AudioError, is_audio_path, iter_loaded_audio, to_stderr, walk_audio_files
from params import BACKGROUND_CLASS, EMBEDDING_SIZE, TRAINING


class DatasetError(Exception):
    """A training folder that cannot train a classifier; the message says how to fix it."""


def scan_training_folder(root, background_elsewhere: bool = False) -> tuple[dict[str, list[Path]], list[str]]:
    """{class name: sorted audio files} from one sub-folder per class, plus notes on what was ignored.

    Hidden files/folders are skipped; non-audio files and loose files in `root` are noted.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"training folder {root} does not exist: make one sub-folder per class with clips in it")
    notes = []
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and is_audio_path(p))
    if loose:
        notes.append(f"ignored {len(loose)} clip(s) directly in {root} (clips belong in a class sub-folder): "
                     + ", ".join(loose[:5]) + (" ..." if len(loose) > 5 else ""))
    files_by_class = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        audio, other = walk_audio_files(folder)
        files_by_class[folder.name] = audio
        if other:
            notes.append(ignored_note(folder, other))
    check_classes(root, files_by_class, background_elsewhere)
    return files_by_class, notes


def ignored_note(folder, other: list[Path]) -> str:
    """One line naming the non-audio files passed over in a folder (the first five)."""
    return (f"ignored {len(other)} non-audio file(s) in {folder}: "
            + ", ".join(p.name for p in other[:5]) + (" ..." if len(other) > 5 else ""))


def check_classes(root, files_by_class: dict[str, list], background_elsewhere: bool = False) -> None:
    """Refuse a training set that cannot make a meaningful classifier. `background_elsewhere`: background
    recordings come from another folder (train.py --negatives), so one class of sounds is enough."""
    if not any(files_by_class.values()):
        raise DatasetError(
            f"no audio found in {root}: put clips in one sub-folder per class, e.g. {Path(root) / 'doorbell'}/clip1.wav"
        )
    empty = [name for name, files in files_by_class.items() if not files]
    if empty:
        raise DatasetError(
            f"class folder(s) with no audio: {', '.join(str(Path(root) / n) for n in empty)}; add clips or remove the folder"
        )
    if list(files_by_class) == [BACKGROUND_CLASS]:
        raise DatasetError(f"only {BACKGROUND_CLASS}/ in {root}: add one sub-folder of clips per sound to detect, "
                           f"e.g. {Path(root) / 'doorbell'}/")
    if len(files_by_class) < 2 and not background_elsewhere:
        (only,) = files_by_class
        raise DatasetError(
            f"only one class ({only!r}) in {root}: a one-class classifier answers {only!r} with 100% confidence to every sound; "
            f"add a second class, e.g. {Path(root) / BACKGROUND_CLASS}/ with everyday sounds that are not {only}"
        )


def split_by_file(files_by_class: dict[str, list[Path]], val_fraction: float, seed: int):
    """Stratified split by file: frames of one file never land on both sides.

    Each class with two or more files gives round(n * val_fraction) of them (at least one,
    at most n - 1) to validation. Returns (train, val) as lists of (path, class index).
    """
    rng = random.Random(seed)
    train, val = [], []
    for index, (name, files) in enumerate(files_by_class.items()):
        files = sorted(files)
        rng.shuffle(files)
        n_val = 0
        if val_fraction > 0 and len(files) >= 2:
            n_val = min(len(files) - 1, max(1, round(len(files) * val_fraction)))
        val += [(path, index) for path in files[:n_val]]
        train += [(path, index) for path in files[n_val:]]
    return train, val


def group_of(path, group_by: str | None) -> str:
    """The group a file belongs to: the first capture group that took part (or the whole match) of
    `group_by` in its name, e.g. r"_([a-z]+)_" puts 7_jackson_32.wav in group 'jackson'."""
    name = Path(path).name
    match = re.search(group_by, name)
    if match is None:
        raise DatasetError(f"--group-by {group_by!r} does not match file {name}: every file needs a group")
    return next((group for group in match.groups() if group is not None), match.group(0))


def cross_validation_folds(files_by_class: dict[str, list[Path]], k: int, seed: int, group_by: str | None = None):
    """K folds by file (or by group): each fold is (train, test) lists of (path, class index), and
    every file is tested exactly once. Files are dealt round-robin class by class (stratified);
    groups are dealt round-robin in random order."""
    if k < 2:
        raise DatasetError("--cv needs at least 2 folds")
    items = [(path, index) for index, files in enumerate(files_by_class.values()) for path in files]
    rng = random.Random(seed)
    fold_of = {}
    if group_by:
        groups = sorted({group_of(path, group_by) for path, _ in items})
        if len(groups) < k:
            raise DatasetError(f"--cv {k} needs at least {k} groups, found {len(groups)}: {', '.join(groups)}")
        rng.shuffle(groups)
        fold_of_group = {group: i % k for i, group in enumerate(groups)}
        fold_of = {path: fold_of_group[group_of(path, group_by)] for path, _ in items}
    else:
        if len(items) < k:
            raise DatasetError(f"--cv {k} needs at least {k} files, found {len(items)}")
        dealt = 0  # one running count across classes, so no fold is left empty
        for files in files_by_class.values():
            shuffled = sorted(files)
            rng.shuffle(shuffled)
            for path in shuffled:
                fold_of[path] = dealt % k
                dealt += 1
    return [([item for item in items if fold_of[item[0]] != fold], [item for item in items if fold_of[item[0]] == fold])
            for fold in range(k)]


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/audio2mqtt/embeddings, or ~/.cache/audio2mqtt/embeddings."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "audio2mqtt" / "embeddings"


def file_digest(path) -> str:
    """sha256 of the file's bytes: a renamed or moved clip still hits the cache."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EmbeddingCache:
    """YAMNet embeddings on disk, keyed by file content and YAMNet identity, one .npy per file."""

    def __init__(self, cache_dir, yamnet_identity: str):
        safe_identity = "".join(c if c.isalnum() else "_" for c in yamnet_identity)[:80]
        self.folder = Path(cache_dir) / safe_identity

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        path = self._path(digest)
        if not path.is_file():
            return None
        try:
            embeddings = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None  # a damaged or empty entry is recomputed and rewritten
        return embeddings if embeddings.ndim == 2 and embeddings.shape[1] == EMBEDDING_SIZE else None

    def put(self, digest: str, embeddings: np.ndarray) -> None:
        with atomic_output(self._path(digest)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, embeddings.astype(np.float32), allow_pickle=False)


@dataclass
class EmbeddingResult:
    """Embeddings per file, the files that failed, and how many came from the cache."""

    embeddings: dict = field(default_factory=dict)  # Path -> (patches, 1024)
    failed: list = field(default_factory=list)      # [(Path, reason)]
    from_cache: int = 0
    computed: int = 0


def clip_embeddings(waveform: np.ndarray, yamnet, views: int = 1, level_dbfs: float | None = None) -> np.ndarray:
    """YAMNet embeddings (patches, 1024) of one clip, optionally scaled to `level_dbfs` RMS and
    embedded as time-shifted copies giving about `views` embeddings (augment.time_shifted_views),
    patches of all copies stacked."""
    if views == 1 and level_dbfs is None:
        return yamnet.run(waveform)[1]
    import augment

    if level_dbfs is not None:
        waveform = augment.normalize_rms(waveform, level_dbfs)
    return embed_waveforms(augment.time_shifted_views(waveform, views), yamnet)


def embed_waveforms(waveforms: list[np.ndarray], yamnet) -> np.ndarray:
    """The patches of several waveforms (views or copies of one clip), stacked: (patches, 1024)."""
    if hasattr(yamnet, "embed_many"):  # TFLite YAMNet: the network runs once over all their patches
        return np.concatenate(yamnet.embed_many(waveforms))
    return np.concatenate([yamnet.run(waveform)[1] for waveform in waveforms])


def augmented_embeddings(waveform: np.ndarray, yamnet, copies: int, seed: int, key: str,
                         level_dbfs: float | None = None) -> np.ndarray:
    """Embeddings of `copies` pitch-shifted (TRAINING.augment_semitones), time-shifted copies of
    one clip (train.py --augment), all patches stacked; reproducible from (seed, copy, key)."""
    import augment

    if level_dbfs is not None:
        waveform = augment.normalize_rms(waveform, level_dbfs)
    variants = [augment.random_augment(waveform, np.random.default_rng([seed, copy, zlib.crc32(key.encode())]),
                                       gain_db=None, snr_db=None, semitones=TRAINING.augment_semitones)
                for copy in range(copies)]
    return embed_waveforms(variants, yamnet)


def embed_files(paths, yamnet, cache: EmbeddingCache | None, progress: bool = True,
                views: int = 1, level_dbfs: float | None = None, augment_copies: int = 0,
                seed: int = 0, log=to_stderr) -> EmbeddingResult:
    """YAMNet embeddings for each file (see `clip_embeddings`), from the cache where possible;
    bad files are reported and skipped. With `augment_copies`, the embeddings of that many
    augmented copies instead (see `augmented_embeddings`)."""
    from tqdm import tqdm

    # Plain embeddings keep the bare content digest as key, so existing caches stay valid.
    level_suffix = "" if level_dbfs is None else f"-rms{level_dbfs:g}dBFS"
    if augment_copies:
        key_suffix = f"-pitch{augment_copies}-seed{seed}" + level_suffix
    else:
        key_suffix = "" if views == 1 and level_dbfs is None else f"-views{views}-per-patch" + level_suffix
    result = EmbeddingResult()
    todo = []
    for path in paths:
        try:
            digest = file_digest(path) + key_suffix
        except OSError as e:  # unreadable or a broken link: skip it like any bad clip
            result.failed.append((path, f"{path}: cannot read ({e.strerror or e})"))
            continue
        cached = cache.get(digest) if cache else None
        if cached is None:
            todo.append((path, digest))
        else:
            result.embeddings[path] = cached
            result.from_cache += 1
    digests = dict(todo)
    bar = tqdm(total=len(todo), desc="embedding", unit="clip", disable=None if progress and todo else True, file=sys.stderr)  # None: off when not a terminal
    for path, waveform in iter_loaded_audio([path for path, _ in todo]):
        bar.update(1)
        if isinstance(waveform, AudioError):
            result.failed.append((path, str(waveform)))
            continue
        if augment_copies:
            embeddings = augmented_embeddings(waveform, yamnet, augment_copies, seed, digests[path], level_dbfs)
        else:
            embeddings = clip_embeddings(waveform, yamnet, views, level_dbfs)
        result.embeddings[path] = embeddings
        result.computed += 1
        if cache:
            try:
                cache.put(digests[path], embeddings)
            except OSError as e:  # a full disk or read-only cache must not cost the training run
                log(f"warning: embedding cache {cache.folder} not writable ({e.strerror or e}); "
                    f"continuing without it")
                cache = None
    bar.close()
    return result


def negative_files(folders: list[Path]) -> tuple[list[Path], list[str]]:
    """The audio files of every --negatives folder, and notes on the non-audio files passed over."""
    paths, notes = [], []
    for folder in folders:
        if not folder.is_dir():
            raise DatasetError(f"--negatives {folder} is not a folder of background recordings")
        audio, other = walk_audio_files(folder)
        if not audio:
            raise DatasetError(f"no audio in {folder}: --negatives needs a folder of background recordings")
        if other:
            notes.append(ignored_note(folder, other))
        paths += audio
    return paths, notes
