"""Matching by landmark votes: a replay of a registered sound shares many landmarks with it *at one
constant time offset*; unrelated audio shares few, at scattered offsets. Votes per (sound, offset)
decide (FingerprintIndex, best_offsets), and they must confirm the sound segment by segment (0.26 s
each) over most of what was heard of it, from its start (assess); last, the query's spectrogram must
show the reference's own peaks where the match puts them (QuerySpectrum.verify). Here too: matching a
whole recording (match_waveform), a live stream pushed in chunks (StreamMatcher), by dense landmarks
(dense_matches), and one match per time a sound played (each_sound_once). The layer above landmarks.py:
it imports fingerprint_params.py, landmarks.py, dense_landmarks.py and params.py, never the database
(fingerprint_store.py), the listener or a CLI; it returns matches and prints nothing.
"""

import functools
import math
from dataclasses import dataclass, replace

import numpy as np

from dense_landmarks import DenseIndex
from dense_landmarks import votes_needed as dense_votes_needed
from fingerprint_params import FINGERPRINT, MATCH, FingerprintParams, MatchDefaults
from landmarks import HASH_BITS, SEGMENT_FRAMES, LandmarkExtractor, QuerySpectrum, Reference, is_plain
from params import LISTEN

STREAM_WARMUP_FRAMES = 8           # landmarks of a stream's (or file's) first 0.13 s are not matched (see StreamMatcher.push)
FILE_PIECE_SECONDS = 30.0          # match_waveform makes a recording's landmarks this much at a time
PREFIX_STEP_FRAMES = int(LISTEN.chunk_seconds / FINGERPRINT.frame_seconds)  # 6: a file match tries what had been
                                   # heard as often as listen.py decides, once per chunk


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


def each_sound_once(matches: list[Match]) -> list[Match]:
    """Of matches in time order, one per time a label's sound played: where references of one label
    match at overlapping times (two recordings of one doorbell), the one with the most votes."""
    def end(m: Match) -> int:
        return m.offset_frames + round(m.reference.duration_s / FINGERPRINT.frame_seconds)

    kept = []
    for match in sorted(matches, key=lambda m: -m.votes):
        if not any(k.reference.label == match.reference.label and k.offset_frames < end(match)
                   and match.offset_frames < end(k) for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: (m.offset_frames, -m.votes, m.reference.name))
