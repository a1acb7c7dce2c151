"""Dense landmarks: Wang's (2003) plain constellation, beside landmarks.py's onset landmarks; numpy/scipy.

A peak is a spectrogram cell that is the loudest of its DenseParams.frames x bins neighbourhood and
louder than most of its frame (a percentile of the frame's levels). Unlike landmarks.py's onset and
end peaks, it need not start or stop, nor stand out from its neighbours by much: the cells of a door's
slam, a fizz or a splash, and of a melody's notes under louder music, still peak where the sound is
loudest. Each peak is paired with the next `fanout` peaks of later frames up to 1 s on, and each pair
hashed as (bin, bin, frames between). A replay agrees with its reference at one time offset; a match
needs many votes there (MatchDefaults.dense_min_votes), since such peaks are common in all audio, spread
segment by segment and verified on the spectrogram as onset matches are (matching.dense_matches).
"""

from dataclasses import dataclass

import numpy as np

BIN_BITS, DT_BITS = 8, 6
DT_MASK = (1 << DT_BITS) - 1
HASH_BITS = 2 * BIN_BITS + DT_BITS  # 22: a look-up table of 4M entries (16 MB)


@dataclass(frozen=True)
class DenseParams:
    """How dense landmarks are made (the same for references and queries)."""

    frames: int = 9          # a peak is the maximum of 9 frames (0.14 s) ...
    bins: int = 15           # ... by 15 bins (234 Hz) around it ...
    percentile: float = 80.0  # ... and above this percentile of its frame's levels
    fanout: int = 10         # partners per peak: the next ones of later frames ...
    max_dt_frames: int = 62  # ... up to 62 frames (1 s) on (6 bits)


DENSE = DenseParams()


class DenseExtractor:
    """Dense landmarks of a stream whose spectrogram arrives in blocks of frames (natural-log levels).

    A peak is decided once the frames after it that its neighbourhood spans have arrived (4 frames,
    64 ms later); every step is causal otherwise, so any blocking gives the same landmarks."""

    def __init__(self, params: DenseParams, bins: int, min_bin: int, floor: float):
        self.params, self.min_bin, self.floor = params, min_bin, floor
        self._half = params.frames // 2
        self._levels = np.full((self._half, bins), floor, np.float32)  # frames not yet decided, and those before them
        self._first = -self._half                          # frame number of _levels[0]: silence came before
        self._recent = np.zeros((0, 3), np.int64)          # (frame, bin, partners taken) of peaks that may still pair

    def push(self, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append spectrogram frames (frames, bins); return the landmarks completed: (hashes int64 (n,),
        frames of their anchor peak int64 (n,))."""
        from scipy.ndimage import maximum_filter

        p, half = self.params, self._half
        levels = np.concatenate([self._levels, np.asarray(level, np.float32)])
        ready = len(levels) - 2 * half  # frames whose neighbourhood is complete: levels[half:half + ready]
        if ready <= 0:
            self._levels = levels
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        loudest = maximum_filter(levels, size=(p.frames, p.bins), mode="nearest")[half:half + ready]
        middle = levels[half:half + ready]
        # the frame's percentile as its k-th smallest level (np.percentile, which interpolates, is 7x slower)
        k = int(p.percentile / 100 * (levels.shape[1] - self.min_bin - 1))
        threshold = np.maximum(np.partition(middle[:, self.min_bin:], k, axis=1)[:, k], self.floor)
        peak = (middle == loudest) & (middle > threshold[:, None])
        peak[:, :self.min_bin] = False
        t, f = np.nonzero(peak)
        new = np.stack([t + self._first + half, f, np.zeros(len(t), np.int64)], axis=1).astype(np.int64)
        self._first += ready
        self._levels = levels[ready:]
        return self._pair(new)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """The landmarks of the last frames, as if silence followed (a reference ends there)."""
        return self.push(np.full((self._half, self._levels.shape[1]), self.floor))

    def _pair(self, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pair new peaks (frame order) with earlier ones, each earlier peak taking its first `fanout`."""
        p = self.params
        anchors = np.concatenate([self._recent, new])
        dt = new[None, :, 0] - anchors[:, None, 0]
        ok = (dt >= 1) & (dt <= p.max_dt_frames)
        ok &= np.cumsum(ok, axis=1) + anchors[:, None, 2] <= p.fanout
        anchors[:, 2] += ok.sum(axis=1)
        ib, ia = np.nonzero(ok.T)  # ordered by the later peak
        a, b = anchors[ia], new[ib]
        hashes = (a[:, 1] << (BIN_BITS + DT_BITS)) | (b[:, 1] << DT_BITS) | (b[:, 0] - a[:, 0])
        latest = self._first - 1 + self._half  # the last frame decided
        self._recent = anchors[(anchors[:, 0] >= latest - p.max_dt_frames) & (anchors[:, 2] < p.fanout)]
        return hashes.astype(np.int64), a[:, 0].astype(np.int64)


class DenseIndex:
    """Every registered sound's dense landmarks, sorted by hash for vectorised look-up."""

    def __init__(self, landmarks: dict):
        """`landmarks[sound_id]` = (hashes (n,), frames (n,))."""
        ids = sorted(landmarks)
        nothing = np.zeros(0, np.int64)
        hashes = np.concatenate([np.asarray(landmarks[s][0], np.int64) for s in ids]) if ids else nothing
        frames = np.concatenate([np.asarray(landmarks[s][1], np.int64) for s in ids]) if ids else nothing
        sound_ids = np.concatenate([np.full(len(landmarks[s][0]), s) for s in ids]) if ids else nothing
        numbers = np.concatenate([np.arange(len(landmarks[s][0])) for s in ids]) if ids else nothing
        order = np.argsort(hashes, kind="stable")
        self.frames, self.sound_ids, self.numbers = frames[order], sound_ids[order].astype(np.int64), numbers[order]
        # per sound, (anchor frames, partner frames) of its landmarks in their stored order (lookup's numbers) ...
        self.landmark_frames = {s: (np.asarray(landmarks[s][1], np.int64),
                                    np.asarray(landmarks[s][1], np.int64) + (np.asarray(landmarks[s][0], np.int64) & DT_MASK))
                                for s in ids}
        self._spans = {s: (np.sort(a), np.sort(b)) for s, (a, b) in self.landmark_frames.items()}  # ... sorted (heard)
        self._starts = np.zeros((1 << HASH_BITS) + 1, np.int32)
        self._starts[1:] = np.bincount(hashes[order], minlength=1 << HASH_BITS)
        np.cumsum(self._starts[1:], out=self._starts[1:])

    def heard(self, sound_id: int, first_frame: int, last_frame: int) -> int:
        """How many of a sound's landmarks lie in its frames first..last (inclusive), both peaks."""
        anchors, completes = self._spans.get(sound_id, (np.zeros(0, np.int64),) * 2)
        return max(0, int(np.searchsorted(completes, last_frame, "right") - np.searchsorted(anchors, first_frame, "left")))

    def lookup(self, hashes: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every agreement of a query landmark with a registered one: (sound ids, offsets in frames = query
        frame - reference frame, query frames, which of the sound's landmarks agreed), (m,) each."""
        hashes = np.asarray(hashes, np.int64)
        lo, hi = self._starts[hashes].astype(np.int64), self._starts[hashes + 1].astype(np.int64)
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return (np.zeros(0, np.int64),) * 4
        entries = np.repeat(lo, counts) + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        times = np.repeat(np.asarray(times, np.int64), counts)
        return self.sound_ids[entries], times - self.frames[entries], times, self.numbers[entries]


def votes_needed(landmarks_heard: int, min_votes: int, min_score: float) -> float:
    """Dense votes that make a match when `landmarks_heard` of the reference's could have been heard:
    chance agreements grow with the landmarks a reference has, so a share of them, and at least min_votes."""
    return max(min_votes, min_score * landmarks_heard)
