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
import json
import math
import sys
from pathlib import Path

import numpy as np

from audio_util import (
    AudioError,
    HelpFormatter,
    audio_inputs,
    detach_closed_stdout,
    iter_loaded_audio,
)
from fingerprint_params import MATCH, FingerprintError, MatchDefaults
from fingerprint_store import DEFAULT_DB, FingerprintStore, LabelInfo, has_label_info, label_groups, read_label_info, register
from matching import FingerprintIndex, StreamMatcher, each_sound_once, match_waveform


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
