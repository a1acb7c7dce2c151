"""Onset landmarks (Wang 2003, as in audfprint): a 16 kHz stream -> spectral peaks that start or end ->
pairs of them hashed as (hash, frame); what a registered recording's landmarks are (Reference); and the
query's spectrogram they were made from, on which a match's peaks and SNR are checked (QuerySpectrum).
Peaks are spectral maxima (a harmonic, a partial, a beep) that stand out from their neighbours in
frequency and appear (a note starts) or vanish (it stops); noise has none, and gain and steady hum do not
matter. Each peak is paired with the first few later peaks up to 1 s ahead; a query keeps more peaks and
pairs than a reference, and a reference only its louder peaks, so that the reference's survive a loud
background. Pure numpy/scipy, the layer under matching.py and fingerprint_store.py: it imports only
fingerprint_params.py and dense_landmarks.py (the --dense option's landmarks, made from the same
spectrogram).
"""

import functools
from dataclasses import dataclass

import numpy as np

from dense_landmarks import DENSE, DenseExtractor
from fingerprint_params import FINGERPRINT, MATCH, FingerprintParams, MatchDefaults

PAIRING_BLOCK_PEAKS = 300          # peaks paired at once: bounds the (anchors x peaks) matrix
_BIN_BITS, _DT_BITS = 8, 6
_DT_MASK = (1 << _DT_BITS) - 1
SEGMENT_FRAMES = 16                # 0.26 s: a match must agree segment by segment across the reference
SNR_BEFORE_FRAMES = 62             # 1 s: a match's SNR compares the sound with what played this long before it
HASH_BITS = 1 + _BIN_BITS + 1 + _BIN_BITS + _DT_BITS  # 24: start/end and frequency bin of each peak, frames between


# --- landmarks: spectral peaks, paired and hashed (Wang 2003) ------------------------------------------

class LandmarkExtractor:
    """Turns a 16 kHz stream, pushed in chunks of any size, into landmarks (hash, frame of the anchor peak).

    Every step is causal, so pushing a recording in one piece or in 0.1 s chunks gives the same
    landmarks: registration and live matching cannot disagree.
    """

    def __init__(self, params: FingerprintParams = FINGERPRINT, keep_level_frames: int | None = 0, dense: bool = False):
        """`keep_level_frames`: how many of the latest spectrogram frames its `spectrum` keeps (None: all), for
        verifying matches (see QuerySpectrum); `dense`: make dense landmarks too (see take_dense)."""
        self.params = p = params
        self.spectrum = QuerySpectrum(p, keep_level_frames)
        self.window = np.hanning(p.n_fft + 1)[:-1].astype(np.float32)
        self._scale = 2.0 / self.window.sum()  # a full-scale sine reads 1.0 (0 dBFS)
        self._log_floor = np.log(10.0 ** (p.level_floor_db / 20.0))
        # as if silence came before: frame k ends at sample (k + 1) * hop, so a sound gives its peaks the
        # same number of frames after its start whether it starts a recording (a reference) or not
        self._samples = np.zeros(p.n_fft - p.hop, dtype=np.float32)
        self.frames_done = 0
        bins = p.bins
        nats_per_frame = p.frame_seconds * np.log(10) / 20
        self._mask_release = p.mask_release_db_per_s * nats_per_frame
        self._level_release = p.level_release_db_per_s * nats_per_frame
        self._rise = p.rise_db * np.log(10) / 20
        self._gate = p.level_gate_db * np.log(10) / 20
        self._mask = np.full(bins, self._log_floor)  # recent neighbourhood maximum per bin, natural log ...
        self._masks_before = np.full((p.rise_lag_frames, bins), self._log_floor)  # ... and as it was lately
        self._level = self._log_floor                # loudest recent bin
        self._last = np.full(bins, self._log_floor)  # the previous frame's levels ...
        self._last2 = np.full(bins, self._log_floor)  # ... and the one before
        self._prominence, self._prominent = np.zeros(bins), np.zeros(bins, bool)  # the previous frame's
        self._rising = np.zeros(bins, bool)  # the previous frame's
        self._recent = np.zeros((0, 4), np.int64)    # (frame, kind, bin, partners taken) of peaks that may still pair
        self.dense = DenseExtractor(DENSE, bins, p.min_bin, self._log_floor) if dense else None
        self._dense_made = []                        # dense landmarks not yet taken (see take_dense)

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append samples; return the landmarks they complete as (hashes uint32 (n,), frames int64 (n,))."""
        from scipy.ndimage import maximum_filter1d, uniform_filter1d

        p = self.params
        self._samples = np.concatenate([self._samples, np.asarray(samples, dtype=np.float32)])
        count = 0 if len(self._samples) < p.n_fft else 1 + (len(self._samples) - p.n_fft) // p.hop
        if count == 0:
            return np.zeros(0, np.uint32), np.zeros(0, np.int64)
        starts = np.arange(count) * p.hop
        frames = self._samples[starts[:, None] + np.arange(p.n_fft)[None, :]] * self.window
        self._samples = self._samples[count * p.hop:]
        magnitude = np.abs(np.fft.rfft(frames, axis=1))[:, :p.bins] * self._scale  # (count, bins)
        level = np.log(np.maximum(magnitude, np.exp(self._log_floor)))
        self.spectrum.append(level)
        if self.dense is not None:
            self._dense_made.append(self.dense.push(level))
        # mask[t] = max(mask[t-1] - release, neighbourhood max of frame t): a running maximum that fades
        # linearly, i.e. a cumulative maximum of (value + release * t), minus release * t
        t = np.arange(1, count + 1)[:, None]
        near = maximum_filter1d(level, 2 * p.spread_bins + 1, axis=1, mode="nearest")
        mask = np.maximum(np.maximum.accumulate(near + self._mask_release * t, axis=0),
                          self._mask) - self._mask_release * t
        # each frame is compared with the mask of rise_lag_frames before: an onset inside a window spreads
        # over frames, the first smeared across frequency (a click), the next a clear spectral peak
        history = np.concatenate([self._masks_before, mask])
        before = history[:count]
        self._masks_before = history[count:]
        loudest = np.maximum(np.maximum.accumulate(level.max(axis=1) + self._level_release * t[:, 0]),
                             self._level) - self._level_release * t[:, 0]
        previous = np.concatenate([self._last[None, :], level[:-1]])
        two_before = np.concatenate([self._last2[None, :], previous[:-1]])
        self._last2 = previous[-1]
        loudest_before = np.concatenate([[self._level], loudest[:-1]])
        self._mask, self._level, self._last = mask[-1], loudest[-1], level[-1]
        prominence = level - uniform_filter1d(level, 2 * p.prominence_bins + 1, axis=1, mode="nearest")
        prominent = prominence >= p.prominence_db * np.log(10) / 20
        prominence_before = np.concatenate([self._prominence[None, :], prominence[:-1]])
        prominent_before = np.concatenate([self._prominent[None, :], prominent[:-1]])
        self._prominence, self._prominent = prominence[-1], prominent[-1]
        rising = _is_maximum(level) & prominent & (level > before + self._rise) & (level >= loudest[:, None] - self._gate)
        # one peak per onset: not where the same frequencies were already rising in the frame before
        rose = maximum_filter1d(np.concatenate([self._rising[None, :], rising[:-1]]), 2 * p.spread_bins + 1, axis=1)
        self._rising = rising[-1]
        starts = self._top(rising & ~rose, prominence)
        # an end: a maximum held for two frames whose whole neighbourhood then fell (not a noise flicker)
        ends = self._top(_is_maximum(previous) & (near < previous - self._rise) & (two_before > previous - self._rise / 2)
                         & prominent_before & (previous >= loudest_before[:, None] - self._gate), prominence_before)
        found = np.concatenate([np.stack([f, np.full(len(f), kind), b, np.zeros(len(f), np.int64)], axis=1)
                                for kind, (f, b) in enumerate((starts, ends))])
        # by frame, and within a frame strongest first: an anchor's first partners are the strong ones
        found = found[np.argsort(found[:, 0], kind="stable")]
        found[:, 0] += self.frames_done
        self.frames_done += count
        pieces = [self._pair(block) for block in np.array_split(found, max(1, len(found) // PAIRING_BLOCK_PEAKS))]
        return (np.concatenate([h for h, _ in pieces]).astype(np.uint32),
                np.concatenate([f for _, f in pieces]).astype(np.int64))

    def take_dense(self, finish: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The dense landmarks (dense_landmarks.py) the pushes since the last call completed: (hashes, frames);
        with `finish`, those of the last frames too, as if silence followed. None made without `dense`."""
        if finish and self.dense is not None:
            self._dense_made.append(self.dense.finish())
        made, self._dense_made = self._dense_made, []
        if not made:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate([h for h, _ in made]), np.concatenate([f for _, f in made])

    def _top(self, peak: np.ndarray, strength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(frames, bins) of the strongest max_peaks_per_frame peaks of each frame, (count, bins) -> (n,), (n,)."""
        p = self.params
        peak[:, :p.min_bin] = False
        strength = np.where(peak, strength, -np.inf)
        top = np.argsort(-strength, axis=1, kind="stable")[:, :p.max_peaks_per_frame]  # strongest first
        rows = np.repeat(np.arange(len(peak)), top.shape[1])
        cols = top.ravel()
        keep = np.isfinite(strength[rows, cols])
        return rows[keep], cols[keep]

    def _pair(self, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pair new peaks, rows (frame, kind, bin, 0) in frame order (strongest first within a frame), with earlier peaks in whose target
        zone they fall, each earlier peak taking its first `fanout` partners: a hash is complete once its
        later peak is there. Returns (hashes, frames of the anchor peaks), ordered by the later peak, so
        any chunking gives the same landmarks. Hash bits: anchor's kind (1: start 0, end 1) and bin (8) |
        partner's kind (1) and bin (8) | frames between (6)."""
        p = self.params
        anchors = np.concatenate([self._recent, new])
        dt = new[None, :, 0] - anchors[:, None, 0]
        ok = (dt >= p.min_dt_frames) & (dt <= p.max_dt_frames) & (np.abs(new[None, :, 2] - anchors[:, None, 2]) <= p.max_df_bins)
        ok &= np.cumsum(ok, axis=1) + anchors[:, None, 3] <= p.fanout  # first partners first
        anchors[:, 3] += ok.sum(axis=1)
        ib, ia = np.nonzero(ok.T)  # ordered by the later peak
        a, b = anchors[ia], new[ib]
        hashes = ((((a[:, 1] << _BIN_BITS | a[:, 2]) << 1 | b[:, 1]) << _BIN_BITS | b[:, 2]) << _DT_BITS
                  | (b[:, 0] - a[:, 0]))
        last = new[-1, 0] if len(new) else self.frames_done
        self._recent = anchors[(anchors[:, 0] >= last - p.max_dt_frames) & (anchors[:, 3] < p.fanout)]
        return hashes, a[:, 0]


def peak_bins(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequency bins of the anchor and the partner peak of each landmark, (n,) each."""
    hashes = np.asarray(hashes, np.int64)
    return (hashes >> (_DT_BITS + _BIN_BITS + 1)) & 0xFF, (hashes >> _DT_BITS) & 0xFF


def landmark_peaks(hashes: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The distinct peaks the landmarks were made of, rows (frame, bin, kind: 0 start, 1 end), by frame."""
    hashes, frames = np.asarray(hashes, np.int64), np.asarray(frames, np.int64)
    anchor_bins, partner_bins = peak_bins(hashes)
    anchor_kinds = (hashes >> (_DT_BITS + 2 * _BIN_BITS + 1)) & 1
    partner_kinds = (hashes >> (_DT_BITS + _BIN_BITS)) & 1
    return np.unique(np.concatenate([np.stack([frames, anchor_bins, anchor_kinds], axis=1),
                                     np.stack([frames + (hashes & _DT_MASK), partner_bins, partner_kinds], axis=1)]),
                     axis=0).reshape(-1, 3)


def _is_maximum(level: np.ndarray) -> np.ndarray:
    """(frames, bins) -> bool: local maxima across frequency (the edges never are)."""
    peak = np.zeros(level.shape, bool)
    peak[:, 1:-1] = (level[:, 1:-1] > level[:, :-2]) & (level[:, 1:-1] >= level[:, 2:])
    return peak


def landmarks(waveform: np.ndarray, params: FingerprintParams = FINGERPRINT) -> tuple[np.ndarray, np.ndarray]:
    """All landmarks of a 16 kHz recording: (hashes uint32 (n,), frames of their first peak int64 (n,))."""
    return LandmarkExtractor(params).push(waveform)


def reference_landmarks(waveform: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A recording to register: its landmarks (see landmarks) and its dense landmarks (dense_landmarks.py),
    each (hashes, frames of their first peak)."""
    extractor = LandmarkExtractor(FINGERPRINT, dense=True)
    return extractor.push(waveform), extractor.take_dense(finish=True)


# --- a registered recording's landmarks ---------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Reference:
    """One registered recording and its landmarks (one object per sound: compared by identity)."""

    sound_id: int
    label: str
    name: str                  # <label>/<file>, e.g. doorbell/ring.wav
    duration_s: float
    frames: np.ndarray         # frame of each landmark's anchor peak, sorted ...
    partner_frames: np.ndarray  # ... and of its partner peak, same order: when the landmark is complete
    peak_bins: int             # distinct frequency bins of its peaks: a beep pattern has one or two
    peaks: np.ndarray          # its landmarks' peaks, rows (frame, bin, kind), by frame (see landmark_peaks)

    @classmethod
    def of(cls, sound_id: int, label: str, name: str, duration_s: float, hashes: np.ndarray,
           frames: np.ndarray) -> tuple["Reference", np.ndarray]:
        """(the reference of a recording's landmarks, its hashes in the reference's landmark order)."""
        order = np.argsort(frames, kind="stable")
        partners = frames.astype(np.int64) + (hashes.astype(np.int64) & _DT_MASK)
        reference = cls(sound_id, label, name, duration_s, frames[order].astype(np.int64), partners[order],
                        len(np.unique(np.concatenate(peak_bins(hashes)))), landmark_peaks(hashes, frames))
        return reference, hashes[order].astype(np.uint32)

    @property
    def landmark_count(self) -> int:
        return len(self.frames)

    @functools.cached_property
    def _completes(self) -> np.ndarray:
        return np.sort(self.partner_frames)

    def landmarks_between(self, first_frame: int, last_frame: int) -> int:
        """How many of its landmarks lie in frames first..last (inclusive), both peaks."""
        return max(0, int(np.searchsorted(self._completes, last_frame, "right")
                          - np.searchsorted(self.frames, first_frame, "left")))

    @functools.cached_property
    def segment_entries(self) -> tuple[np.ndarray, np.ndarray]:
        """(landmark, segment) pairs, (m,) each: a landmark belongs to the SEGMENT_FRAMES-long segments of
        both its peaks, so a sound's last note, which anchors few landmarks, still has its own."""
        anchor, partner = self.frames // SEGMENT_FRAMES, self.partner_frames // SEGMENT_FRAMES
        apart = np.flatnonzero(partner != anchor)
        return (np.concatenate([np.arange(self.landmark_count), apart]), np.concatenate([anchor, partner[apart]]))

    @functools.cached_property
    def peak_frames(self) -> int:
        """Distinct frames its landmarks' peaks lie in: a chime has a few per strike, a melody or a word dozens."""
        return len(np.unique(np.concatenate([self.frames, self.partner_frames])))

    @functools.cached_property
    def segment_sizes(self) -> np.ndarray:
        """Landmarks in each segment of the reference, (segments,)."""
        return np.bincount(self.segment_entries[1], minlength=1)

    def segment_counts(self, found: np.ndarray, first_frame: int, last_frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Per segment, (landmarks a query covering frames first..last could show, those of `found` (indices)
        among them), (segments,) each."""
        landmark, segment = self.segment_entries
        heard = (self.frames >= first_frame) & (self.partner_frames <= last_frame)
        agreed = np.zeros(self.landmark_count, bool)
        agreed[found] = True
        count = len(self.segment_sizes)
        return (np.bincount(segment[heard[landmark]], minlength=count),
                np.bincount(segment[heard[landmark] & agreed[landmark]], minlength=count))


def is_plain(reference: Reference, rules: MatchDefaults = MATCH) -> bool:
    """A chime (all its peaks in a few strikes) or a beep pattern (on one or two pitches): other sounds hold
    those few notes too."""
    return reference.peak_frames <= rules.plain_peak_frames or reference.peak_bins <= rules.plain_peak_bins


# --- a query's spectrogram: a match's peaks and SNR checked on it ---------------------------------------

class QuerySpectrum:
    """The latest spectrogram frames of a query (natural-log levels, as LandmarkExtractor computes them),
    kept to verify a candidate match against the reference's own peaks."""

    def __init__(self, params: FingerprintParams = FINGERPRINT, keep_frames: int | None = 0):
        self.params, self.keep_frames = params, keep_frames  # None: all
        self._pieces = [np.zeros((0, params.bins), np.float16)]  # 16 bits: 0.07 dB steps, 32 kB per second
        self.end_frame = 0  # frames appended so far: levels holds frames end_frame - len(levels) .. end_frame - 1

    @property
    def levels(self) -> np.ndarray:
        if len(self._pieces) > 1:  # a file's pieces are joined once, when a match is checked
            self._pieces = [np.concatenate(self._pieces)]
        return self._pieces[0]

    def append(self, level: np.ndarray) -> None:
        self.end_frame += len(level)
        if self.keep_frames != 0:
            self._pieces.append(level.astype(np.float16))
            if self.keep_frames is not None:
                levels = self.levels
                self._pieces = [levels[max(0, len(levels) - self.keep_frames):]]

    def snr_db(self, first_frame: int, last_frame: int) -> float | None:
        """About how loud a sound heard in frames first..last was against what played before it (125 Hz-4 kHz):
        dB of the power those frames added over the power of the SNR_BEFORE_FRAMES before them. None when
        those frames are not kept (a stream that had just started)."""
        start, last_frame = self.end_frame - len(self.levels), min(last_frame, self.end_frame - 1)
        if first_frame - SNR_BEFORE_FRAMES < start or last_frame < first_frame:
            return None
        rows = self.levels[first_frame - SNR_BEFORE_FRAMES - start:last_frame + 1 - start, self.params.min_bin:]
        power = np.exp(2 * rows.astype(np.float64)).sum(axis=1)  # above the rumble, as landmarks are
        before, during = power[:SNR_BEFORE_FRAMES].mean(), power[SNR_BEFORE_FRAMES:].mean()
        return round(float(np.clip(10 * np.log10(max(during - before, 1e-6 * before) / before), -60, 60)), 1)

    def verify(self, reference: Reference, offset: int, first_frame: int, last_frame: int,
               rules: MatchDefaults = MATCH) -> tuple[float, int]:
        """(share of the reference's peaks in its frames first..last that stand out in the query at `offset`,
        how many were checked). A peak stands out when, within a frame and a bin of where it should be, the
        query is prominent and starts (or ends) there: a replay's peaks do, under a background; another
        melody that only shares some notes, or holds them longer, or a voice of another pitch, does not."""
        from scipy.ndimage import maximum_filter, maximum_filter1d, uniform_filter1d

        start = self.end_frame - len(self.levels)
        frames, bins, kinds = reference.peaks.T
        query_frames = frames + offset
        plain = is_plain(reference, rules)
        after = 1 + (rules.plain_end_drop_frames if plain else rules.end_drop_frames)  # frames an end is judged on, +1
        # a peak is checked with 4 frames before it and `after` after (see `change`) in the levels kept
        checked = ((frames >= first_frame) & (frames <= last_frame)
                   & (query_frames >= start + 4) & (query_frames <= self.end_frame - 1 - after))
        if not checked.any():
            return 0.0, 0
        query_frames, bins, kinds = query_frames[checked], bins[checked], kinds[checked]
        first = query_frames.min() - 4
        block = self.levels[first - start:query_frames.max() + 1 + after - start].astype(np.float64)
        to_nats = np.log(10) / 20
        prominence = block - uniform_filter1d(block, 2 * self.params.prominence_bins + 1, axis=1, mode="nearest")
        prominence = maximum_filter(prominence, size=3, mode="nearest")
        near = maximum_filter1d(block, 3, axis=1, mode="nearest")
        rows = (query_frames - first)[:, None] + np.array([-1, 0, 1])
        columns = bins[:, None]
        rise = near[rows, columns] - np.maximum(near[rows - 3, columns], near[rows - 2, columns])
        fall = near[rows, columns] - np.min([near[rows + k, columns] for k in range(2, after)], axis=0)
        change = np.where(kinds[:, None] == 0, rise, fall).max(axis=1)
        end_drop_db = rules.plain_end_drop_db if plain else rules.verify_change_db
        stands_out = ((prominence[rows[:, 1], bins] >= rules.verify_prominence_db * to_nats)
                      & (change >= np.where(kinds == 0, rules.verify_change_db, end_drop_db) * to_nats))
        return float(stands_out.mean()), int(len(stands_out))
