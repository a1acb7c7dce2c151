"""Exact-sound matching by landmark fingerprints (Wang 2003, as in audfprint); numpy/scipy, no TensorFlow.

Peaks are spectral maxima (a harmonic, a partial, a beep) that stand out from their neighbours in
frequency and appear (a note starts) or vanish (it stops); noise has none, and gain and steady hum do
not matter. Each peak is paired with the first few later peaks up to 1 s ahead, and each pair hashed as
(start/end and frequency bin of each, frames between them); a query keeps more peaks and pairs than a
reference, and a reference only its louder peaks, so that the reference's survive a loud background. A
replay of a registered sound under music or noise shares many landmarks with it *at one constant time
offset*; unrelated audio shares few, at scattered offsets. Votes per (sound, offset) decide, and they must
confirm the sound segment by segment (0.26 s each) over most of what was heard of it, from its start:
another melody that shares two or three notes with it agrees many times, but only there. Last, the
query's spectrogram must show the reference's own peaks where the match puts them (most of them
prominent, and starting or ending there): votes that agree by chance do not come with those.

    python fingerprint.py add sounds/                       # one label per sub-folder
    python fingerprint.py list
    python fingerprint.py match clip.wav [--json]
    python fingerprint.py remove doorbell                   # a label, or one file: doorbell/ring.wav

The database is one SQLite file (standard library), changed in transactions: a crash or Ctrl+C
never leaves a half-registered sound. `StreamMatcher` does the same matching on a live stream for
listen.py.
"""

import argparse
import contextlib
import datetime
import functools
import hashlib
import json
import math
import sqlite3
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from audio_util import (
    AudioError,
    HelpFormatter,
    audio_inputs,
    detach_closed_stdout,
    first_line,
    iter_loaded_audio,
    walk_audio_files,
)
from dense_landmarks import DenseIndex
from dense_landmarks import votes_needed as dense_votes_needed
from fingerprint_params import FINGERPRINT, MATCH, FingerprintError, FingerprintParams, MatchDefaults, reference_settings
from landmarks import HASH_BITS, SEGMENT_FRAMES, LandmarkExtractor, QuerySpectrum, Reference, is_plain, reference_landmarks
from params import DEFAULT_MODELS_DIR, LISTEN


DB_FORMAT = "audio2mqtt-fingerprints"
DB_VERSION = 5                      # 1: onset landmarks; 2: before denser queries; 3: weak peaks in references;
                                    # 4: before dense landmarks; refused
DEFAULT_DB = DEFAULT_MODELS_DIR / "fingerprints.sqlite"
META_FILENAME = "meta.json"         # optional, in sounds/<label>/: fields sent with every event of the label
YAML_META_FILENAMES = ("meta.yaml", "meta.yml")  # refused with a hint: PyYAML is not a dependency
COOLDOWN_KEY = "cooldown"           # in meta.json: seconds the label stays quiet after an event ends
STREAM_WARMUP_FRAMES = 8           # landmarks of a stream's (or file's) first 0.13 s are not matched (see StreamMatcher.push)
FILE_PIECE_SECONDS = 30.0          # match_waveform makes a recording's landmarks this much at a time
PREFIX_STEP_FRAMES = int(LISTEN.chunk_seconds / FINGERPRINT.frame_seconds)  # 6: a file match tries what had been
                                   # heard as often as listen.py decides, once per chunk


# --- matching: votes per (sound, time offset) ---------------------------------------------------------

@dataclass(frozen=True)
class Match:
    """A reference heard in a query: from query frame `offset_frames` on, `votes` of its landmarks agree."""

    reference: Reference
    offset_frames: int        # query frame where the reference's frame 0 falls (may be negative)
    votes: int                # distinct landmarks of the reference found there (never more than it has)
    expected: int             # landmarks of the reference that the query could have shown
    segments_confirmed: int = 0  # segments (SEGMENT_FRAMES) of the reference confirmed by their own landmarks ...
    segments_total: int = 0   # ... of all its segments that count (see counted_segments)
    covered: int = 0          # landmarks heard in the confirmed segments ...
    countable: int = 0        # ... and in all the counted segments heard
    onset_votes: int = 0      # agreeing landmarks in the first segments heard (onset_segments; with min_segment_landmarks)
    verified: float | None = None  # share of its peaks heard that stand out in the query (None: not checked)
    checked_peaks: int = 0    # ... of this many
    dense: bool = False       # found by its dense landmarks (votes and expected count those)
    snr_db: float | None = None  # about how loud it was against what played before it (QuerySpectrum.snr_db)

    @property
    def score(self) -> float:
        """Fraction of the reference's landmarks found where expected, 0-1."""
        return min(1.0, self.votes / max(1, self.expected))

    def as_dict(self, frame_seconds: float = FINGERPRINT.frame_seconds) -> dict:
        """What a user sees; a sound that began before the query is at 0 s."""
        return {"label": self.reference.label, "reference": self.reference.name,
                "offset_s": round(max(0, self.offset_frames) * frame_seconds, 3), "votes": self.votes,
                "score": round(self.score, 4), "snr_db": self.snr_db}

    def with_snr(self, spectrum: "QuerySpectrum") -> "Match":
        """This match with its SNR estimated on the query's spectrogram (see QuerySpectrum.snr_db)."""
        end = self.offset_frames + math.ceil(self.reference.duration_s / spectrum.params.frame_seconds) - 1
        return replace(self, snr_db=spectrum.snr_db(self.offset_frames, end))


def votes_needed(reference: Reference, landmarks_heard: int, rules: MatchDefaults = MATCH) -> float:
    """Votes that make a match when `landmarks_heard` of the reference's landmarks could have been heard."""
    if is_plain(reference, rules):
        return max(rules.plain_min_votes, rules.min_votes, rules.plain_min_score * landmarks_heard)
    return max(rules.min_votes, rules.min_score * landmarks_heard)


def counted_segments(reference: Reference, rules: MatchDefaults = MATCH) -> np.ndarray:
    """Which of the reference's segments count for coverage (bool, (segments,)): not a quiet tail or gap."""
    sizes = reference.segment_sizes
    return sizes >= max(rules.min_segment_landmarks, rules.tail_segment_share * sizes.max())


def assess(reference: Reference, offset: int, found: np.ndarray, first_frame: int, last_frame: int,
           rules: MatchDefaults = MATCH, spectrum: "QuerySpectrum | None" = None) -> Match:
    """The evidence for `reference` at `offset`: `found` are its landmarks (indices) that agree, from a
    query that covered its frames first..last. A segment is confirmed when enough of its own landmarks
    agree; chance agreements are a few stray landmarks, not a stretch of the sound. With the query's
    `spectrum`, evidence that the landmarks accept is verified on it."""
    expected, agreeing = reference.segment_counts(found, first_frame, last_frame)
    counted = counted_segments(reference, rules)
    countable = counted & (expected >= rules.min_segment_landmarks)
    confirmed = countable & (agreeing >= np.maximum(rules.min_segment_votes, rules.min_segment_fraction * expected))
    # a spoken word's first segment holds most of it: its onset is that one segment
    onset_segments = 1 if counted.sum() <= rules.short_reference_segments else rules.onset_segments
    first = np.flatnonzero(expected >= rules.min_segment_landmarks)[:onset_segments]
    match = Match(reference, offset, len(found), reference.landmarks_between(first_frame, last_frame),
                  int(confirmed.sum()), int(counted.sum()),
                  int(expected[confirmed].sum()), int(expected[countable].sum()), int(agreeing[first].sum()))
    if spectrum is not None and landmarks_agree(match, rules):
        verified, checked = spectrum.verify(reference, offset, first_frame, last_frame, rules)
        match = replace(match, verified=verified, checked_peaks=checked)
    return match


def first_match_while_heard(reference: Reference, offset: int, found: np.ndarray, first_frame: int, last_frame: int,
                            rules: MatchDefaults = MATCH, spectrum: "QuerySpectrum | None" = None,
                            max_tries: int = 64) -> Match | None:
    """The match a listener would have made while the sound played: the evidence of the query up to
    every PREFIX_STEP_FRAMES of the sound in turn (at most `max_tries` of them), the first that is a match.
    A file that stops partway through a sound, or whose end is lost in noise, then matches as listen.py
    hears it."""
    # as often as a listener decides (every 0.1 s push), over the reference, not over the whole query
    last = min(last_frame - 1, int(reference.partner_frames.max()))
    ends = np.arange(max(first_frame, 0) + PREFIX_STEP_FRAMES - 1, last + 1, PREFIX_STEP_FRAMES)
    for end in ends[::max(1, math.ceil(len(ends) / max_tries))]:
        match = assess(reference, offset, found[reference.partner_frames[found] <= end], first_frame, int(end), rules,
                       spectrum)
        if is_match(match, rules):
            return match
    return None


def segments_needed(segments_total: int, rules: MatchDefaults = MATCH) -> int:
    """Confirmed segments a match needs, of a reference with `segments_total` counted ones."""
    if segments_total <= rules.short_reference_segments:
        return 1
    return min(rules.min_segments, math.ceil(rules.min_segments_share * segments_total))


def is_match(match: Match, rules: MatchDefaults = MATCH) -> bool:
    """The landmarks agree (landmarks_agree) and, if it was checked, the query's spectrogram shows the
    reference's peaks where the match puts them."""
    return landmarks_agree(match, rules) and (match.verified is None or (
        match.checked_peaks >= rules.min_verified_peaks and match.verified >= rules.min_verified_share))


def landmarks_agree(match: Match, rules: MatchDefaults = MATCH) -> bool:
    """Enough agreeing landmarks, in segments that hold a fair share of what was heard of the reference,
    and enough of those segments to cover most of the reference (or its first second or so), from its start."""
    return (match.votes >= votes_needed(match.reference, match.expected, rules)
            and match.onset_votes >= rules.min_onset_votes
            and match.covered >= rules.min_covered_share * match.countable
            and match.segments_confirmed >= segments_needed(match.segments_total, rules))


class FingerprintIndex:
    """All landmarks of a database in memory, sorted by hash for vectorised look-up."""

    def __init__(self, references: list[Reference], hashes: dict[int, np.ndarray],
                 params: FingerprintParams = FINGERPRINT, metadata: dict | None = None, dense: dict | None = None):
        """`hashes[sound_id]` pairs with `reference.frames` (same order); `metadata` is {label: LabelInfo};
        `dense[sound_id]` is its dense landmarks (hashes, frames), if any."""
        self.params = params
        self._dense_landmarks = dense or {}
        self.references = {r.sound_id: r for r in references}
        self.metadata = metadata or {}
        self.duration_frames = {r.sound_id: math.ceil(r.duration_s / params.frame_seconds) for r in references}
        nothing = np.zeros(0, np.int64)
        all_hashes = np.concatenate([hashes[r.sound_id] for r in references]) if references else np.zeros(0, np.uint32)
        all_frames = np.concatenate([r.frames for r in references]) if references else nothing
        all_ids = np.concatenate([np.full(r.landmark_count, r.sound_id) for r in references]) if references else nothing
        numbers = np.concatenate([np.arange(r.landmark_count) for r in references]) if references else nothing
        order = np.argsort(all_hashes, kind="stable")
        self.hashes = all_hashes[order].astype(np.uint32)
        self.frames = all_frames[order].astype(np.int64)
        self.sound_ids = all_ids[order].astype(np.int64)
        self.landmark_numbers = numbers[order].astype(np.int64)  # which of its sound's landmarks each entry is
        # where each possible hash's entries start: a look-up is two array reads, not a binary search
        # (64 MB of int32 for the 24-bit hash space; built in a fraction of a second, summed as
        # int32 in place, so that loading peaks at ~190 MB, not ~380: it matters on a Raspberry Pi)
        self._starts = np.zeros((1 << HASH_BITS) + 1, np.int32)
        self._starts[1:] = np.bincount(self.hashes, minlength=1 << HASH_BITS)
        np.cumsum(self._starts[1:], out=self._starts[1:])

    @property
    def labels(self) -> list[str]:
        return sorted({r.label for r in self.references.values()})

    @functools.cached_property
    def dense(self) -> DenseIndex:
        """The dense landmarks' index, built when first matched with (MatchDefaults.dense: 16 MB more)."""
        return DenseIndex(self._dense_landmarks)

    def lookup(self, hashes: np.ndarray, times: np.ndarray,
               dt_tolerance: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every agreement of a query landmark with a registered one, as (sound ids, offsets in frames,
        query frames of the anchor peak, which of the sound's landmarks agreed), shapes (m,) each.
        Offset = query frame - reference frame. With `dt_tolerance` 1, a landmark whose peaks are one
        frame further apart or closer also agrees."""
        hashes = np.asarray(hashes, np.int64)
        n = len(hashes)
        shifts = range(-dt_tolerance, dt_tolerance + 1)
        hashes = np.clip(np.concatenate([hashes + d for d in shifts]), 0, (1 << HASH_BITS) - 1)
        times = np.tile(np.asarray(times, np.int64), len(shifts))
        lo, hi = self._starts[hashes].astype(np.int64), self._starts[hashes + 1].astype(np.int64)
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return (np.zeros(0, np.int64),) * 4
        query = np.repeat(np.arange(len(hashes)), counts)
        # positions lo[i], lo[i]+1, ..., hi[i]-1 for every query i, without a Python loop
        entries = np.repeat(lo, counts) + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        sound_ids, offsets = self.sound_ids[entries], times[query] - self.frames[entries]
        # one vote per query landmark and (sound, offset), whichever of its dt variants agreed
        # (packed into one int64: < 4M query landmarks, < 1M sounds, offsets within +-4.6 h)
        _, first = np.unique((query % n) << 41 | sound_ids << 21 | (offsets + (1 << 20)), return_index=True)
        return sound_ids[first], offsets[first], times[query][first], self.landmark_numbers[entries][first]


def best_offsets(sound_ids: np.ndarray, offsets: np.ndarray, numbers: np.ndarray,
                 tolerance: int = MATCH.offset_tolerance_frames, min_votes: int = 1, worth=None,
                 apart: dict[int, int] | None = None, only: np.ndarray | None = None) -> list[tuple[int, int, np.ndarray]]:
    """The best offsets of each sound, as [(sound id, offset, its landmarks that agree there)], most votes
    first, for offsets with at least `min_votes`: a vote is a query landmark agreeing with one of the sound's
    (`numbers`) at that offset +-tolerance frames. One offset per sound, or with `apart` {sound: frames},
    every offset that is that far from the better ones (a sound played twice). `worth(sound, offset,
    votes)`, if given, says which offsets deserve a closer look; `only`, if given, which sounds may."""
    if len(sound_ids) == 0:
        return []
    span = 1 << 24  # offsets are far smaller than this
    all_keys = sound_ids * (2 * span) + (offsets + span)
    by_key = np.argsort(all_keys, kind="stable")  # one sort serves the counting and the gathering below
    sorted_keys = all_keys[by_key]
    starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
    keys, counts = sorted_keys[starts], np.diff(np.append(starts, len(sorted_keys)))
    near = counts.copy()
    for shift in range(1, tolerance + 1):
        for sign in (-1, 1):
            where = np.minimum(np.searchsorted(keys, keys + sign * shift), len(keys) - 1)
            near += np.where(keys[where] == keys + sign * shift, counts[where], 0)
    enough = near >= min_votes
    if only is not None:
        enough &= np.isin(keys // (2 * span), only)
    keys, counts, near = keys[enough], counts[enough], near[enough]
    chosen = {}
    for k in np.lexsort((keys, -counts, -near)):  # most votes first; ties: most votes exactly there
        sound, offset = int(keys[k] // (2 * span)), int(keys[k] % (2 * span) - span)
        taken = chosen.setdefault(sound, [])
        if taken and (apart is None or any(abs(offset - o) < apart[sound] for o, _ in taken)):
            continue
        if worth is None or worth(sound, offset, int(near[k])):
            taken.append((offset, int(keys[k])))
    result = []
    for sound, taken in chosen.items():
        for offset, key in taken:
            lo, hi = np.searchsorted(sorted_keys, [key - tolerance, key + tolerance + 1])
            result.append((sound, offset, np.unique(numbers[by_key[lo:hi]])))
    return sorted(result, key=lambda r: -len(r[2]))


def match_landmarks(index: FingerprintIndex, hashes: np.ndarray, times: np.ndarray, query_frames: int,
                    rules: MatchDefaults = MATCH, spectrum: QuerySpectrum | None = None,
                    dense: tuple[np.ndarray, np.ndarray] | None = None) -> list[Match]:
    """References found in a query of `query_frames` frames, in order of time; a sound heard twice is
    found twice. Matches are verified on the query's `spectrum` if given (match_waveform gives it); with
    the query's `dense` landmarks (hashes, frames), a sound they find and the others do not is found too."""
    sound_ids, offsets, _, numbers = index.lookup(hashes, times)

    def worth(sound, offset, votes):  # as few as the sound's first stretch needs: it may match as it played
        return votes >= votes_needed(index.references[sound], 0, rules)

    matches = []
    for sound, offset, found in best_offsets(sound_ids, offsets, numbers, rules.offset_tolerance_frames,
                                             rules.min_votes, worth, index.duration_frames):
        reference = index.references[sound]
        match = assess(reference, offset, found, -offset, query_frames - 1 - offset, rules, spectrum)
        if not is_match(match, rules):
            match = first_match_while_heard(reference, offset, found, -offset, query_frames - 1 - offset, rules,
                                            spectrum)
        if match is not None:
            matches.append(match)
    if dense is not None:
        sound_ids, offsets, _, numbers = index.dense.lookup(*dense)
        for match in dense_matches(index, sound_ids, offsets, numbers, lambda o: (-o, query_frames - 1 - o), rules,
                                   spectrum=spectrum):
            if not any(m.reference is match.reference and abs(m.offset_frames - match.offset_frames) <= 2 for m in matches):
                matches.append(match)
    return sorted(matches, key=lambda m: (m.offset_frames, -m.votes, m.reference.name))


def match_waveform(index: FingerprintIndex, waveform: np.ndarray, rules: MatchDefaults = MATCH) -> list[Match]:
    """References found anywhere in a 16 kHz recording, in order of time (each time a sound plays)."""
    extractor = LandmarkExtractor(index.params.for_query, keep_level_frames=None, dense=rules.dense)
    # in pieces (the same landmarks, see LandmarkExtractor): a long recording's spectrogram computed at
    # once would take ~100 MB per minute
    step = round(FILE_PIECE_SECONDS * index.params.sample_rate)
    pieces = [extractor.push(waveform[start:start + step]) for start in range(0, len(waveform), step)]
    hashes = np.concatenate([h for h, _ in pieces]) if pieces else np.zeros(0, np.uint32)
    times = np.concatenate([t for _, t in pieces]) if pieces else np.zeros(0, np.int64)
    # as a listener started where the file starts: its first frames rise "from silence" everywhere
    live = times >= STREAM_WARMUP_FRAMES
    dense = extractor.take_dense(finish=True) if rules.dense else None
    if dense is not None:
        dense = tuple(x[dense[1] >= STREAM_WARMUP_FRAMES] for x in dense)
    return [m.with_snr(extractor.spectrum) for m in match_landmarks(
        index, hashes[live], times[live], extractor.frames_done, rules, extractor.spectrum, dense)]


class StreamMatcher:
    """Matches a live 16 kHz stream, pushed in chunks, against an index.

    Keeps the agreements of the last `stream_history_seconds`; after each push, `push` returns the
    matches that the push's agreements made or confirmed: enough votes at one offset, and the reference
    still playing there (its duration plus `stream_grace_seconds` from its matched start).
    """

    def __init__(self, index: FingerprintIndex, rules: MatchDefaults = MATCH):
        self.index, self.rules = index, rules
        self.history_frames = round(rules.stream_history_seconds / index.params.frame_seconds)
        self.extractor = LandmarkExtractor(index.params.for_query, keep_level_frames=self.history_frames + 8,
                                           dense=rules.dense)
        self.grace_frames = round(rules.stream_grace_seconds / index.params.frame_seconds)
        self._agreements = Agreements()
        self._dense_agreements = Agreements()

    @property
    def frames_done(self) -> int:
        return self.extractor.frames_done

    @property
    def seconds_done(self) -> float:
        return self.frames_done * self.index.params.frame_seconds

    def end_frame(self, match: Match) -> int:
        """The last frame at which `match` is still on: its reference's end plus the grace."""
        return match.offset_frames + self.index.duration_frames[match.reference.sound_id] + self.grace_frames

    def push(self, samples: np.ndarray) -> list[Match]:
        """Feed samples; return the matches they make or confirm, best first (at most one per label)."""
        hashes, times = self.extractor.push(samples)
        live = times >= STREAM_WARMUP_FRAMES  # a live stream's first frames rise "from silence" everywhere
        now = self.frames_done
        sound_ids, offsets, times, numbers = self.index.lookup(hashes[live], times[live])
        self._agreements.add(sound_ids, offsets, times, numbers, now - self.history_frames)
        if self.rules.dense:
            dense_hashes, dense_times = self.extractor.take_dense()
            live = dense_times >= STREAM_WARMUP_FRAMES
            dense_ids, *dense = self.index.dense.lookup(dense_hashes[live], dense_times[live])
            self._dense_agreements.add(dense_ids, *dense, now - self.history_frames)

        def heard(offset):
            return max(-offset, now - self.history_frames - offset), now - 1 - offset

        def playing(sound, offset):
            return now <= offset + self.index.duration_frames[sound] + self.grace_frames

        def worth(sound, offset, votes):  # cheap tests first: most chance agreements stop here
            return (playing(sound, offset)
                    and votes >= votes_needed(self.index.references[sound],
                                             self.index.references[sound].landmarks_between(*heard(offset)), self.rules))

        # only sounds that gained agreements now can have become a match (an event, once on, is held by
        # FingerprintListener until its sound ends)
        found = {}
        a = self._agreements
        for sound, offset, numbers in best_offsets(a.sound_ids, a.offsets, a.numbers,
                                                   self.rules.offset_tolerance_frames, self.rules.min_votes, worth,
                                                   self.index.duration_frames, only=np.unique(sound_ids)):
            match = assess(self.index.references[sound], offset, numbers, *heard(offset), self.rules,
                           self.extractor.spectrum)
            if not is_match(match, self.rules):
                continue
            label = match.reference.label
            if label not in found or match.votes > found[label].votes:
                found[label] = match
        a = self._dense_agreements
        for match in dense_matches(self.index, a.sound_ids, a.offsets, a.numbers, heard, self.rules, playing,
                                   np.unique(dense_ids), self.extractor.spectrum) if self.rules.dense else []:
            found.setdefault(match.reference.label, match)  # a match of its onset landmarks says more
        return sorted(found.values(), key=lambda m: -m.votes)


class Agreements:
    """A stream's recent agreements with registered landmarks (see FingerprintIndex.lookup), (m,) each."""

    def __init__(self):
        self.sound_ids, self.offsets, self.times, self.numbers = (np.zeros(0, np.int64) for _ in range(4))

    def add(self, sound_ids, offsets, times, numbers, oldest_frame: int) -> None:
        """Append new agreements; forget those of query frames before `oldest_frame`."""
        keep = self.times >= oldest_frame
        self.sound_ids = np.concatenate([self.sound_ids[keep], sound_ids])
        self.offsets = np.concatenate([self.offsets[keep], offsets])
        self.times = np.concatenate([self.times[keep], times])
        self.numbers = np.concatenate([self.numbers[keep], numbers])


def dense_matches(index: FingerprintIndex, sound_ids, offsets, numbers, heard, rules: MatchDefaults = MATCH,
                  playing=None, only=None, spectrum: "QuerySpectrum | None" = None) -> list[Match]:
    """Matches by dense landmarks (see dense_landmarks.py), one offset per sound: agreements as
    FingerprintIndex.dense.lookup gives them; `heard(offset)` the reference's frames the query covered;
    `playing(sound, offset)`, if given, whether it may still be on (a stream); verified on the query's
    `spectrum` if given, as onset matches are but to a lower share (dense_min_verified_share)."""

    def worth(sound, offset, votes):
        return ((playing is None or playing(sound, offset))
                and votes >= dense_votes_needed(index.dense.heard(sound, *heard(offset)), rules.dense_min_votes,
                                                rules.dense_min_score))

    candidates = best_offsets(sound_ids, offsets, numbers, rules.offset_tolerance_frames, rules.dense_min_votes, worth,
                              index.duration_frames, only)
    founds = [found for _, _, found in candidates]
    matches = [Match(index.references[sound], offset, len(found), index.dense.heard(sound, *heard(offset)), dense=True)
               for sound, offset, found in candidates]
    # best_offsets counted every agreement; a match counts each of the reference's landmarks once, and
    # they must agree over the reference as the onset landmarks must (see landmarks_agree)
    agreed = [replace(m, segments_confirmed=confirmed, segments_total=total)
              for m, found in zip(matches, founds)
              for confirmed, total in [dense_segments(index, m.reference.sound_id, found, *heard(m.offset_frames), rules)]
              if m.votes >= dense_votes_needed(m.expected, rules.dense_min_votes, rules.dense_min_score)
              and confirmed >= segments_needed(total, rules)]
    if spectrum is None:
        return agreed
    verified = [replace(m, verified=v, checked_peaks=n) for m in agreed
                for v, n in [spectrum.verify(m.reference, m.offset_frames, *heard(m.offset_frames), rules)]]
    return [m for m in verified if m.checked_peaks < rules.min_verified_peaks or m.verified >= rules.dense_min_verified_share]


def dense_segments(index: FingerprintIndex, sound: int, found: np.ndarray, first_frame: int, last_frame: int,
                   rules: MatchDefaults = MATCH) -> tuple[int, int]:
    """(segments of the reference confirmed by its `found` dense landmarks, in a query that covered its
    frames first..last; its segments that count): as `assess` does for onset landmarks."""
    anchors, partners = index.dense.landmark_frames[sound]
    segment = anchors // SEGMENT_FRAMES
    count = int(segment.max()) + 1 if len(segment) else 1
    sizes = np.bincount(segment, minlength=count)
    heard = (anchors >= first_frame) & (partners <= last_frame)
    agreed = np.zeros(len(anchors), bool)
    agreed[found] = True
    expected = np.bincount(segment[heard], minlength=count)
    agreeing = np.bincount(segment[heard & agreed], minlength=count)
    counted = sizes >= max(rules.min_segment_landmarks, rules.tail_segment_share * sizes.max())
    confirmed = (counted & (expected >= rules.min_segment_landmarks)
                 & (agreeing >= np.maximum(rules.min_segment_votes, rules.min_segment_fraction * expected)))
    return int(confirmed.sum()), int(counted.sum())


# --- the database: one SQLite file ------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE labels (
    label TEXT PRIMARY KEY,
    metadata TEXT NOT NULL,          -- JSON object sent with every event of the label
    cooldown REAL                    -- seconds; NULL: listen.py's --cooldown
);
CREATE TABLE sounds (
    id INTEGER PRIMARY KEY,
    label TEXT NOT NULL REFERENCES labels(label),
    name TEXT NOT NULL UNIQUE,       -- <label>/<path inside the label folder>
    audio_sha256 TEXT NOT NULL UNIQUE,  -- of the decoded 16 kHz samples: the same sound is never stored twice
    duration_s REAL NOT NULL,
    landmark_count INTEGER NOT NULL,
    hashes BLOB NOT NULL,            -- uint32 little-endian, one per landmark
    frames BLOB NOT NULL,            -- uint16 little-endian: frame of each landmark's first peak
    dense_hashes BLOB NOT NULL,      -- the same for its dense landmarks (dense_landmarks.py): uint32 ...
    dense_frames BLOB NOT NULL,      -- ... and uint16
    added TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class LabelInfo:
    """What a label's meta.json said: fields for its events, and its own cooldown (None: the default)."""

    metadata: dict
    cooldown: float | None = None


class FingerprintStore:
    """An open fingerprint database. Every change is one transaction: all of it lands, or none."""

    def __init__(self, path, create: bool = False):
        if str(path).strip() == "":  # Path("") is "."
            raise FingerprintError("no database file given (an empty path): e.g. --db models/fingerprints.sqlite")
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise FingerprintError(f"no fingerprint database at {self.path}: make one with "
                                       f"python fingerprint.py add sounds/ --db {self.path}")
            self._create(self.path)
        if self.path.is_dir():
            raise FingerprintError(f"{self.path} is a folder, not a fingerprint database")
        if self.path.stat().st_size == 0:  # SQLite would take it for an empty database of someone else's
            raise FingerprintError(f"{self.path}: an empty file (0 bytes), not a fingerprint database: delete it "
                                   f"and add your sounds (python fingerprint.py add sounds/ --db {self.path})")
        try:
            self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
        except sqlite3.Error as e:
            raise FingerprintError(f"cannot open fingerprint database {self.path} ({e})") from e
        self._check()

    @staticmethod
    def _create(path: Path) -> None:
        """A new, empty database, made under a temporary name and renamed: never half-made."""
        from atomic_write import atomic_output

        try:
            with atomic_output(path) as tmp:
                conn = sqlite3.connect(tmp)
                with conn:
                    conn.executescript(_SCHEMA)
                    conn.executemany("INSERT INTO info VALUES (?, ?)", [
                        ("format", DB_FORMAT), ("version", str(DB_VERSION)),
                        ("params", json.dumps(FINGERPRINT.reference_settings(), sort_keys=True))])
                conn.close()
        except (OSError, sqlite3.Error) as e:
            raise FingerprintError(f"cannot create fingerprint database {path} ({first_line(e)})") from e

    def _check(self) -> None:
        """Refuse anything that is not a database of ours, made with today's landmark settings."""
        try:
            info = dict(self.conn.execute("SELECT key, value FROM info").fetchall())
        except sqlite3.DatabaseError as e:
            self.conn.close()
            if "no such table" in str(e):
                raise FingerprintError(f"{self.path}: an SQLite database, but not one of audio2mqtt's fingerprints") from e
            raise FingerprintError(f"{self.path}: not a fingerprint database ({e})") from e
        if info.get("format") != DB_FORMAT:
            self.conn.close()
            raise FingerprintError(f"{self.path}: an SQLite database, but not one of audio2mqtt's fingerprints")
        try:
            params = json.loads(info.get("params") or "{}")
        except ValueError:
            params = {}
        same_settings = isinstance(params, dict) and FINGERPRINT.reference_settings() == reference_settings(params)
        if info.get("version") != str(DB_VERSION) or not same_settings:
            self.conn.close()
            why = (f"format {info.get('version')}, this one reads {DB_VERSION}" if info.get("version") != str(DB_VERSION)
                   else "other landmark settings")
            raise FingerprintError(f"{self.path}: made by another version of fingerprint.py ({why}): delete it and "
                                   f"add your sounds again (python fingerprint.py add sounds/ --db {self.path})")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextlib.contextmanager
    def transaction(self):
        """BEGIN ... COMMIT, or ROLLBACK on any exception, Ctrl+C included. A crash (power, kill -9)
        in between is rolled back by SQLite's journal the next time the file is opened."""
        self._execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.rollback()
            raise
        self._execute("COMMIT")

    def _execute(self, sql: str, args=()) -> list:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise FingerprintError(f"{self.path}: damaged fingerprint database ({e}); delete it and run add again") from e

    # --- reading ---

    def sounds(self) -> list[dict]:
        """[{id, label, name, duration_s, landmark_count, added}] ordered by label and name."""
        rows = self._execute("SELECT id, label, name, duration_s, landmark_count, added FROM sounds ORDER BY label, name")
        return [dict(zip(("id", "label", "name", "duration_s", "landmark_count", "added"), row)) for row in rows]

    def labels(self) -> dict[str, LabelInfo]:
        rows = self._execute("SELECT label, metadata, cooldown FROM labels ORDER BY label")
        try:
            return {label: LabelInfo(json.loads(metadata), cooldown) for label, metadata, cooldown in rows}
        except json.JSONDecodeError as e:
            raise FingerprintError(f"{self.path}: damaged fingerprint database (label metadata: {e})") from e

    def has_sound(self, name: str) -> bool:
        return bool(self._execute("SELECT 1 FROM sounds WHERE name = ?", (name,)))

    def find_audio(self, audio_sha256: str) -> tuple[str, str] | None:
        rows = self._execute("SELECT name, label FROM sounds WHERE audio_sha256 = ?", (audio_sha256,))
        return rows[0] if rows else None

    def load_index(self, rules: MatchDefaults = MATCH) -> FingerprintIndex:
        """Everything, in memory, ready to match."""
        references, hashes, dense = [], {}, {}
        for sound_id, label, name, duration, count, hash_blob, frame_blob, dense_hashes, dense_frames in self._execute(
                "SELECT id, label, name, duration_s, landmark_count, hashes, frames, dense_hashes, dense_frames FROM sounds"):
            h = np.frombuffer(hash_blob, dtype="<u4")
            f = np.frombuffer(frame_blob, dtype="<u2")
            dense[sound_id] = np.frombuffer(dense_hashes, dtype="<u4"), np.frombuffer(dense_frames, dtype="<u2")
            if len(h) != count or len(f) != count or len(dense[sound_id][0]) != len(dense[sound_id][1]):
                raise FingerprintError(f"{self.path}: damaged fingerprint database (sound {name!r} has "
                                       f"{len(h)} hashes for {count} landmarks); delete it and run add again")
            reference, hashes[sound_id] = Reference.of(sound_id, label, name, duration, h, f)
            references.append(reference)
        return FingerprintIndex(references, hashes, FINGERPRINT, self.labels(), dense)

    # --- writing: each call is one transaction ---

    def add_sound(self, label: str, info: LabelInfo, name: str, audio_sha256: str, duration_s: float,
                  hashes: np.ndarray, frames: np.ndarray, dense: tuple[np.ndarray, np.ndarray]) -> None:
        """Register one recording (replacing an older version of the same name), its landmarks and dense
        landmarks (hashes, frames), and its label's metadata."""
        with self.transaction():
            self._set_label(label, info)
            self._execute("DELETE FROM sounds WHERE name = ?", (name,))
            self._execute(
                "INSERT INTO sounds (label, name, audio_sha256, duration_s, landmark_count, hashes, frames, "
                "dense_hashes, dense_frames, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (label, name, audio_sha256, duration_s, len(hashes), np.asarray(hashes, "<u4").tobytes(),
                 np.asarray(frames, "<u2").tobytes(), np.asarray(dense[0], "<u4").tobytes(),
                 np.asarray(dense[1], "<u2").tobytes(),
                 datetime.datetime.now().astimezone().isoformat(timespec="seconds")))

    def set_label(self, label: str, info: LabelInfo) -> bool:
        """Update a registered label's metadata; True if it changed."""
        with self.transaction():
            return self._set_label(label, info)

    def _set_label(self, label: str, info: LabelInfo) -> bool:
        metadata = json.dumps(info.metadata, sort_keys=True)
        if self._execute("SELECT 1 FROM labels WHERE label = ? AND metadata = ? AND cooldown IS ?",
                         (label, metadata, info.cooldown)):
            return False
        self._execute("INSERT INTO labels VALUES (?, ?, ?) ON CONFLICT (label) DO UPDATE SET "
                      "metadata = excluded.metadata, cooldown = excluded.cooldown", (label, metadata, info.cooldown))
        return True

    def remove(self, what: str) -> list[str]:
        """Remove a label (all its sounds) or one sound by name; returns the names removed."""
        with self.transaction():
            names = [n for (n,) in self._execute("SELECT name FROM sounds WHERE label = ? ORDER BY name", (what,))]
            if not names:
                names = [n for (n,) in self._execute("SELECT name FROM sounds WHERE name = ?", (what.strip("/"),))]
            if not names:
                known = ", ".join(label for (label,) in self._execute("SELECT label FROM labels ORDER BY label")) or "none"
                raise FingerprintError(f"no label or sound {what!r} in {self.path} (labels: {known}; "
                                       f"see python fingerprint.py list)")
            self._execute(f"DELETE FROM sounds WHERE name IN ({', '.join('?' * len(names))})", names)
            self._execute("DELETE FROM labels WHERE label NOT IN (SELECT label FROM sounds)")
        return names


# --- registering sounds ---------------------------------------------------------------------------

def read_label_info(folder: Path) -> LabelInfo:
    """The optional meta.json of a label folder: an object of fields for its events, `cooldown` apart."""
    path = folder / META_FILENAME
    if any((folder / name).is_file() for name in YAML_META_FILENAMES):
        if not path.is_file():
            raise FingerprintError(f"{folder}: meta.yaml is not read (PyYAML is not a dependency): write it as {META_FILENAME}")
    if not path.is_file():
        return LabelInfo({})
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise FingerprintError(f"cannot read {path} ({first_line(e)})") from e
    except json.JSONDecodeError as e:
        raise FingerprintError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(fields, dict):
        raise FingerprintError(f'{path} must hold one JSON object, e.g. {{"game": "Super Mario", "cooldown": 10}}')
    cooldown = fields.pop(COOLDOWN_KEY, None)
    if cooldown is not None and (isinstance(cooldown, bool) or not isinstance(cooldown, (int, float))
                                 or not math.isfinite(cooldown) or cooldown < 0):
        raise FingerprintError(f"{path}: cooldown must be a number of seconds, 0 or more (got {cooldown!r})")
    return LabelInfo(fields, None if cooldown is None else float(cooldown))


def has_label_info(folder: Path) -> bool:
    """Whether a folder holds a meta.json (or a meta.yaml that read_label_info refuses)."""
    return any((folder / name).is_file() for name in (META_FILENAME, *YAML_META_FILENAMES))


def label_groups(root: Path, label: str | None) -> tuple[list[tuple[str, Path, list[Path]]], list[Path]]:
    """[(label, its folder or file, its audio files)] and the audio files that have no label.

    With `label`, everything under `root` (a file or a folder) is that label; otherwise each
    sub-folder of `root` is one label, named after it.
    """
    if label is not None:
        files, _ = walk_audio_files(root)
        return [(label, root, files)], []
    groups, unlabelled = [], []
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            groups.append((child.name, child, walk_audio_files(child)[0]))
        elif walk_audio_files(child)[0]:
            unlabelled.append(child)
    return groups, unlabelled


def audio_identity(waveform: np.ndarray) -> str:
    """sha256 of the decoded samples: the same sound in another file or format is still the same."""
    return hashlib.sha256(np.ascontiguousarray(waveform, dtype=np.float32).tobytes()).hexdigest()


def register(store: FingerprintStore, label: str, info: LabelInfo, name: str, waveform: np.ndarray,
             rules: MatchDefaults = MATCH) -> tuple[str, str]:
    """Fingerprint and store one recording; returns (outcome, message), outcome 'added', 'unchanged' or 'skipped'."""
    duration = len(waveform) / FINGERPRINT.sample_rate
    if duration > rules.max_reference_seconds:
        return "skipped", f"{duration:.0f} s is longer than {rules.max_reference_seconds:.0f} s: cut out the part to recognise"
    identity = audio_identity(waveform)
    known = store.find_audio(identity)
    if known and known[0] == name:
        return "unchanged", "already registered"
    if known:
        return "skipped", f"the same audio is already registered as {known[0]}"
    if not np.any(np.abs(waveform) > 10.0 ** (FINGERPRINT.level_floor_db / 20.0)):
        return "skipped", f"silent (nothing above {FINGERPRINT.level_floor_db:.0f} dBFS): record it again, closer"
    (hashes, frames), dense = reference_landmarks(waveform)
    if len(hashes) < rules.min_landmarks_to_register:
        return "skipped", (f"too short, quiet or plain to fingerprint: {len(hashes)} landmarks found, "
                           f"{rules.min_landmarks_to_register} needed (record it longer or closer, or use a YAMNet class)")
    replaced = "replaces its earlier version; " if store.has_sound(name) else ""
    store.add_sound(label, info, name, identity, duration, hashes, frames, dense)
    reference, _ = Reference.of(0, label, name, duration, hashes, frames)
    needed = votes_needed(reference, 0, rules)
    if is_plain(reference, rules) and len(hashes) < 2 * needed:
        return "added", (f"{replaced}{duration:.1f} s, {len(hashes)} landmarks; a plain sound (a few strikes, or one "
                         f"or two pitches): {needed:.0f} of them must agree, so it is recognised only when heard clearly")
    return "added", f"{replaced}{duration:.1f} s, {len(hashes)} landmarks"


def _add_command(args, parser) -> int:
    root = Path(args.sounds)
    if not root.exists():
        parser.error(f"{root} does not exist")
    if args.label is None and not root.is_dir():
        parser.error(f"{root} is a file: give its label with --label NAME, or put it in sounds/<label>/")
    if args.label is not None and (not args.label.strip() or "/" in args.label):
        parser.error("--label must be a non-empty name without '/'")
    groups, unlabelled = label_groups(root, args.label)
    if not groups and not unlabelled:
        print(f"error: nothing to add in {root}: put each sound in {root}/<label>/ (one folder per label)",
              file=sys.stderr)
        return 1
    failed = len(unlabelled)
    for path in unlabelled:
        print(f"skipped {path}: not in a label folder; put it in {root}/<label>/ or use --label", file=sys.stderr)
    counts = {"added": 0, "unchanged": 0, "skipped": 0}
    new_database = not Path(args.db).exists()
    with FingerprintStore(args.db, create=True) as store:
        try:
            for label, base, files in groups:
                try:
                    info = (read_label_info(base) if base.is_dir() and (args.label is None or has_label_info(base))
                            else store.labels().get(label, LabelInfo({})))  # `--label`: keep what the label has
                except FingerprintError as e:
                    print(f"skipped label {label}: {e}", file=sys.stderr)
                    failed += len(files) or 1
                    continue
                if not files:
                    print(f"skipped label {label}: no audio files in {base}", file=sys.stderr)
                    failed += 1
                    continue
                for path, waveform in iter_loaded_audio(files):
                    if isinstance(waveform, AudioError):
                        print(f"skipped {waveform}", file=sys.stderr)
                        failed += 1
                        continue
                    inside = path.relative_to(base).as_posix() if base.is_dir() else path.name
                    outcome, message = register(store, label, info, f"{label}/{inside}", waveform)
                    counts[outcome] += 1
                    failed += outcome == "skipped"
                    print(f"{outcome} {label}/{inside}: {message}", file=sys.stderr if outcome == "skipped" else sys.stdout)
                if any(s["label"] == label for s in store.sounds()) and store.set_label(label, info):
                    print(f"label {label}: metadata {json.dumps(info.metadata)}, cooldown {info.cooldown}")
        except KeyboardInterrupt:
            print(f"interrupted: {args.db} holds {len(store.sounds())} sound(s), each whole (the one in progress "
                  f"was added or not, never in part)", file=sys.stderr)
            return 130
        total = len(store.sounds())
    summary = f"{counts['added']} added, {counts['unchanged']} unchanged, {failed} skipped"
    if new_database and total == 0:  # nothing usable: no empty database for listen.py to open
        Path(args.db).unlink(missing_ok=True)
        print(f"{summary}; nothing to store, so {args.db} was not made")
    else:
        print(f"{summary}; {args.db} holds {total} sound(s)")
    return 1 if failed else 0


def _list_command(args, parser) -> int:
    with FingerprintStore(args.db) as store:
        labels, sounds = store.labels(), store.sounds()
    if args.json:
        print(json.dumps({"labels": {label: {"metadata": info.metadata, "cooldown": info.cooldown}
                                     for label, info in labels.items()}, "sounds": sounds}))
        return 0
    if not sounds:
        print(f"{args.db}: no sounds registered")
    for label, info in labels.items():
        mine = [s for s in sounds if s["label"] == label]
        extra = f", cooldown {info.cooldown:g} s" if info.cooldown is not None else ""
        extra += f", metadata {json.dumps(info.metadata)}" if info.metadata else ""
        print(f"{label}: {len(mine)} sound(s), {sum(s['duration_s'] for s in mine):.1f} s{extra}")
        for s in mine:
            print(f"  {s['name']}  {s['duration_s']:.1f} s, {s['landmark_count']} landmarks, added {s['added']}")
    return 0


def _remove_command(args, parser) -> int:
    with FingerprintStore(args.db) as store:
        names = store.remove(args.what)
    print(f"removed {len(names)} sound(s): {', '.join(names)}")
    return 0


def each_sound_once(matches: list[Match]) -> list[Match]:
    """Of matches in time order, one per time a label's sound played: where references of one label
    match at overlapping times (two recordings of one doorbell), the one with the most votes."""
    kept = []
    for match in sorted(matches, key=lambda m: -m.votes):
        end = match.offset_frames + round(match.reference.duration_s / FINGERPRINT.frame_seconds)
        if not any(k.reference.label == match.reference.label and k.offset_frames < end
                   and match.offset_frames < k.offset_frames + round(k.reference.duration_s / FINGERPRINT.frame_seconds)
                   for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: (m.offset_frames, -m.votes, m.reference.name))


def _match_command(args, parser) -> int:
    rules = MatchDefaults(min_votes=args.min_votes, dense=args.dense)
    index = load_index(args.db, rules)
    files, problems = audio_inputs(args.clips)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    failed = len(problems)
    for path, waveform in iter_loaded_audio(files):
        if isinstance(waveform, AudioError):
            print(f"skipped {waveform}", file=sys.stderr)
            failed += 1
            continue
        matches = each_sound_once(match_waveform(index, waveform, rules))
        if args.json:
            print(json.dumps({"file": str(path), "matches": [
                dict(m.as_dict(), metadata=index.metadata.get(m.reference.label, LabelInfo({})).metadata) for m in matches]}))
        elif not matches:
            print(f"{path}: no match")
        for m in [] if args.json else matches:
            d = m.as_dict()
            snr = "" if d["snr_db"] is None else f", {d['snr_db']:+.0f} dB against what played before it"
            print(f"{path}: {d['label']} ({d['reference']}) at {d['offset_s']:.2f} s, "
                  f"{d['votes']} votes, score {d['score']:.2f}{snr}")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Register exact sounds (a doorbell, a game jingle) and find them in "
                                                 "recordings by landmark fingerprints.",
                                     formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, **kwargs):
        sub = commands.add_parser(name, formatter_class=HelpFormatter, **kwargs)
        sub.add_argument("--db", type=str, default=str(DEFAULT_DB), help="the fingerprint database (SQLite file)")
        return sub

    add = command("add", help="register sounds: one label per sub-folder",
                  description="Register every audio file under SOUNDS/<label>/. An optional SOUNDS/<label>/meta.json "
                              '(e.g. {"game": "Super Mario", "cooldown": 10}) gives fields sent with every event of '
                              "the label and its cooldown in seconds. Re-adding the same audio changes nothing.")
    add.add_argument("sounds", help="a folder with one sub-folder per label (or, with --label, a file or folder)")
    add.add_argument("--label", default=None, help="register everything in SOUNDS under this one label")
    listing = command("list", help="list labels and sounds")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    remove = command("remove", help="remove a label or one sound")
    remove.add_argument("what", metavar="LABEL|SOUND", help="a label, or a sound as listed (e.g. doorbell/ring.wav)")
    match = command("match", help="find registered sounds in recordings")
    match.add_argument("clips", nargs="+", help="audio files or folders")
    match.add_argument("--json", action="store_true", help="one JSON object per clip")
    match.add_argument("--min-votes", type=int, default=MATCH.min_votes,
                       help="agreeing landmarks a match needs (besides a share of the reference's landmarks and segments)")
    match.add_argument("--dense", action="store_true",
                       help="also match by dense landmarks: finds more under loud music and noisy sounds, "
                            "but other melodies of the same notes now and then (README: Exact sounds)")
    args = parser.parse_args(argv)
    if args.command == "match" and args.min_votes < 1:
        match.error("--min-votes must be at least 1")
    handler = {"add": (_add_command, add), "list": (_list_command, listing), "remove": (_remove_command, remove),
               "match": (_match_command, match)}[args.command]
    try:
        return handler[0](args, handler[1])
    except FingerprintError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        detach_closed_stdout()
        return 1


class FingerprintListener:
    """Live events of registered sounds: a StreamMatcher feeding the same EventDetector as YAMNet's
    scores (a match starts an event at once: it is already confirmed across the sound's segments), with
    per-label cooldown from meta.json. Returns event dicts that carry method "fingerprint", the matched
    reference, its votes and the label's metadata.

    The cooldown silences a repeat of the sound, not a better-heard one: a match with OUTVOTE_FACTOR
    times the votes of the event before still starts an event (that one was likely a false match)."""

    METHOD = "fingerprint"
    OUTVOTE_FACTOR = 2.0

    def __init__(self, index: FingerprintIndex, cooldown_s: float = 0.0, rules: MatchDefaults = MATCH):
        from detection import EventDetector

        self.index, self.matcher = index, StreamMatcher(index, rules)
        self.labels = index.labels
        self.cooldowns = {label: cooldown_s if index.metadata.get(label, LabelInfo({})).cooldown is None
                          else index.metadata[label].cooldown for label in self.labels}
        # cooldowns are kept here, not in the detector: they need the votes of the event that began them
        self.detector = EventDetector(self.labels, dict.fromkeys(self.labels, 0.5), 1, 0.0, window_s=0.0)
        self._events_on = {}  # label -> the Match its current event stands for
        self._quiet = {}      # label -> (stream seconds it is quiet until, votes of the event that ended)
        self._snr_db = {}     # label -> the SNR its event started with (the second before it is gone by its end)

    def push(self, samples: np.ndarray) -> list[dict]:
        """Feed 16 kHz samples (any amount); return the events they complete."""
        matches = {m.reference.label: m for m in self.matcher.push(samples)}
        now, now_s = self.matcher.frames_done, self.matcher.seconds_done
        for label, on in self._events_on.items():
            match = matches.get(label)
            if match and match.reference is on.reference and abs(match.offset_frames - on.offset_frames) <= 1:
                self._events_on[label] = max(on, match, key=lambda m: m.votes)  # its best view of the match
            elif now <= self.matcher.end_frame(on):
                matches[label] = on  # recognised once, a sound plays to its end: a noisy stretch does not end it
            elif match:
                del matches[label]   # another sound of the label: this event ends first, then that one starts
        for label in [label for label in matches if label not in self._events_on]:
            until_s, votes = self._quiet.get(label, (-math.inf, 0))
            onset_s = matches[label].offset_frames * self.index.params.frame_seconds
            if onset_s < until_s and matches[label].votes < self.OUTVOTE_FACTOR * votes:
                del matches[label]   # a repeat that began inside the cooldown (even if it plays on past it)
        scores = [1.0 if label in matches else 0.0 for label in self.labels]
        return [self._describe(event, matches) for event in self.detector.update(now_s, scores)]

    def flush(self) -> list[dict]:
        """End of stream: nothing is held back (a stream's landmarks are matched as they come)."""
        return []

    def finish(self) -> list[dict]:
        """End of stream or shutdown: end every event still on."""
        return [self._describe(event, {}) for event in self.detector.finish()]

    def _describe(self, event: dict, matches: dict) -> dict:
        label = event["label"]
        if event["event"] == "start":
            match = self._events_on[label] = matches[label]
            self._snr_db[label] = match.with_snr(self.matcher.extractor.spectrum).snr_db  # once per event
        else:
            match = self._events_on.pop(label)
            self._quiet[label] = (event["offset_s"] + self.cooldowns[label], match.votes)
        snr_db = self._snr_db[label] if event["event"] == "start" else self._snr_db.pop(label)
        frame_s = self.index.params.frame_seconds
        onset = match.offset_frames * frame_s  # before 0 for a sound that began before the stream did
        if event["event"] == "start":
            event["offset_s"] = round(max(0.0, onset), 3)
        else:  # the reference's end, unless the stream stopped first
            event["offset_s"] = round(min(onset + match.reference.duration_s, event["offset_s"]), 3)
            event["duration_s"] = round(event["offset_s"] - max(0.0, onset), 3)
        event.update(score=round(match.score, 4), method=self.METHOD, reference=match.reference.name,
                     votes=match.votes, snr_db=snr_db,
                     metadata=self.index.metadata.get(label, LabelInfo({})).metadata)
        return event


def load_index(db_path, rules: MatchDefaults = MATCH) -> FingerprintIndex:
    """The index of a database file, for listen.py; FingerprintError for a missing, foreign or empty one."""
    with FingerprintStore(db_path) as store:
        index = store.load_index(rules)
    if not index.references:
        raise FingerprintError(f"{db_path}: no sounds registered yet: python fingerprint.py add sounds/ --db {db_path}")
    return index


if __name__ == "__main__":
    sys.exit(main())
