"""Live events of registered sounds, for listen.py and live.py: FingerprintListener turns a stream's
matches into start/end events with per-label cooldowns, and load_index opens a database for it. The
top library layer: it imports matching.py, fingerprint_store.py, fingerprint_params.py and
detection.py (the EventDetector YAMNet's scores use too), never a CLI; it returns event dicts and
prints nothing.
"""

import math

import numpy as np

from detection import EventDetector
from fingerprint_params import MATCH, FingerprintError, MatchDefaults
from fingerprint_store import FingerprintStore, LabelInfo
from matching import FingerprintIndex, StreamMatcher


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
