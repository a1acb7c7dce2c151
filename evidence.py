"""Evidence clips: the audio around each event (2 s before its start to 1 s after its end), written as
FLAC to a folder kept within a size and age limit, so a user can hear what fired and feed a false alarm
back into training. Pure numpy plus soundfile; listen.py owns the wiring.
"""

import datetime
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atomic_write import atomic_output
from params import EVIDENCE, SAMPLE_RATE

CLIP_SUFFIX = ".flac"


class RingBuffer:
    """The last `capacity` samples of a stream, addressed by their index in the whole stream."""

    def __init__(self, capacity: int):
        self._data = np.zeros(capacity, dtype=np.float32)
        self.total = 0  # samples pushed so far

    def push(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=np.float32)
        n, samples = len(samples), samples[-len(self._data):]  # more than fits: only the last part stays
        start = (self.total + n - len(samples)) % len(self._data)
        first = min(len(samples), len(self._data) - start)
        self._data[start:start + first] = samples[:first]
        self._data[:len(samples) - first] = samples[first:]
        self.total += n

    def get(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of the stream, clipped to what is still held."""
        start, stop = max(start, self.total - len(self._data), 0), min(stop, self.total)
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        idx = np.arange(start, stop) % len(self._data)
        return self._data[idx]


def clip_id(when: datetime.datetime, label: str, method: str, n: int) -> str:
    """A file-name-safe, sortable id: '20260105-180211-doorbell-yamnet-3'."""
    safe = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "sound"
    return f"{when:%Y%m%d-%H%M%S}-{safe}-{method}-{n}"


@dataclass
class _Pending:
    label: str
    clip_id: str
    start_s: float
    end_s: float | None = None


class EvidenceRecorder:
    """Keeps recent audio and writes one clip per event (start to end, plus the margins).

    `push` takes the stream's audio, `on_event` each event as it is emitted (and adds `id` and
    `evidence`, the clip's file name, to it); a clip is written once its end margin has been heard,
    or at `finish`. Clips go to a temporary name and are renamed; then the folder is pruned."""

    def __init__(self, folder, max_megabytes: float = EVIDENCE.max_megabytes, max_days: float = EVIDENCE.max_days,
                 before_s: float = EVIDENCE.before_seconds, after_s: float = EVIDENCE.after_seconds,
                 buffer_s: float = EVIDENCE.buffer_seconds, clock=datetime.datetime.now, log=None,
                 prune_every_s: float = EVIDENCE.prune_every_seconds):
        """`log(line)` reports a clip that could not be written (the listener goes on); `on_claimed(path)`,
        if set, gets a clip that claim_last claimed before it was written, once it is."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.max_age_s = max_megabytes * 1e6, max_days * 86400
        self.before_s, self.after_s = before_s, after_s
        self.buffer = RingBuffer(round(buffer_s * SAMPLE_RATE))
        self.clock, self.log, self.on_claimed = clock, log or (lambda line: None), None
        # what "Not a <label>" moves: the clip of the label's latest event, written or not yet
        self._latest: dict[str, str] = {}  # label -> clip id
        self._unwritten: set[str] = set()  # clip ids of events on or ending (bounded by the events in flight)
        self._claimed: set[str] = set()    # of those, the ones claimed before they were written
        self._lock = threading.Lock()  # the MQTT thread claims clips while the audio thread writes them
        self._pending: dict[tuple[str, str], _Pending] = {}  # (label, method) -> its event's clip
        self._ending: list[_Pending] = []
        self._count = 0
        self.prune_every_s, self._next_prune_s = prune_every_s, prune_every_s
        self.prune()

    def push(self, samples: np.ndarray) -> None:
        self.buffer.push(samples)
        heard_s = self.buffer.total / SAMPLE_RATE
        for clip in [c for c in self._ending if c.end_s + self.after_s <= heard_s]:
            self._write(clip)
        if heard_s >= self._next_prune_s:
            self._next_prune_s = heard_s + self.prune_every_s
            self.prune()

    def on_event(self, event: dict) -> None:
        key = (event["label"], event.get("method", ""))
        if event["event"] == "start":
            self._count += 1
            clip = self._pending[key] = _Pending(event["label"], clip_id(self.clock(), event["label"], key[1], self._count),
                                                 event["offset_s"])
            with self._lock:
                self._latest[clip.label] = clip.clip_id
                self._unwritten.add(clip.clip_id)
        else:
            clip = self._pending.pop(key, None)
            if clip is None:
                return
            clip.end_s = event["offset_s"]
            self._ending.append(clip)
        event["id"], event["evidence"] = clip.clip_id, clip.clip_id + CLIP_SUFFIX

    def claim_last(self, label: str) -> tuple[str | None, Path | None]:
        """For "Not a <label>": (the id of the label's latest event, its clip if written and still there).
        A clip not written yet (its event is on, or its end margin is not yet heard) goes to `on_claimed`
        once it is. (None, None) when the label had no event since the start, or it was claimed already."""
        with self._lock:
            clip_id = self._latest.pop(label, None)
            if clip_id is None or clip_id in self._unwritten:
                if clip_id is not None:
                    self._claimed.add(clip_id)
                return clip_id, None
        path = self.folder / (clip_id + CLIP_SUFFIX)
        return clip_id, (path if path.is_file() else None)

    def finish(self) -> None:
        """End of stream: write what is waiting, with whatever end margin was heard."""
        for clip in list(self._ending):
            self._write(clip)

    def _write(self, clip: _Pending) -> None:
        import soundfile

        self._ending.remove(clip)
        start = round((clip.start_s - self.before_s) * SAMPLE_RATE)
        stop = round((clip.end_s + self.after_s) * SAMPLE_RATE)
        audio = self.buffer.get(start, stop)
        path = self.folder / (clip.clip_id + CLIP_SUFFIX)
        try:
            with atomic_output(path) as tmp:
                soundfile.write(str(tmp), audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        except (OSError, RuntimeError) as e:  # a full card, a read-only remount: the listener goes on
            self.log(f"evidence: could not write {path} ({e})")
            path = None
        with self._lock:
            self._unwritten.discard(clip.clip_id)
            claimed = clip.clip_id in self._claimed
            self._claimed.discard(clip.clip_id)
        if claimed and path is not None and self.on_claimed is not None:
            self.on_claimed(path)
        self.prune()

    def prune(self) -> list[Path]:
        """Delete clips older than the age limit, then the oldest until the folder fits its size limit."""
        now = time.time()
        stats = []
        for path in self.folder.glob("*" + CLIP_SUFFIX):
            try:
                stats.append((path.stat(), path))
            except FileNotFoundError:  # moved by a "Not a ..." press or deleted meanwhile
                continue
        clips = sorted(((st.st_mtime_ns, st.st_size, p) for st, p in stats), key=lambda c: (c[0], c[2].name))
        removed, total = [], sum(size for _, size, _ in clips)
        for mtime, size, path in clips:
            if now - mtime / 1e9 > self.max_age_s or total > self.max_bytes:
                path.unlink(missing_ok=True)
                removed.append(path)
                total -= size
        return removed


def find_clip(folder, event_id: str) -> Path | None:
    """The evidence clip of an event id (or of a clip's file name), or None."""
    name = Path(event_id).name
    path = Path(folder) / (name if name.endswith(CLIP_SUFFIX) else name + CLIP_SUFFIX)
    return path if path.is_file() else None


def move_to_training(clip: Path, training_dir) -> Path:
    """Move an evidence clip to <training>/background/false_alarms/ (a hard negative for train.py)."""
    target = Path(training_dir) / EVIDENCE.false_alarm_folder / clip.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if clip.stat().st_dev == target.parent.stat().st_dev:
        os.replace(clip, target)  # one rename: never half there
    else:  # another filesystem: a copy under a temporary name, renamed, then the original goes
        with atomic_output(target) as tmp:
            tmp.write_bytes(clip.read_bytes())
        clip.unlink()
    return target
