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
never leaves a half-registered sound. This file is the command line only: it parses, prints and exits,
and imports the library, which never imports it back. Each layer imports only those before it:
fingerprint_params.py (landmark settings, matching rules, FingerprintError) <- landmarks.py (onset
landmarks, a reference's landmarks, the query's spectrogram) <- matching.py (votes, verification, file,
stream and dense matching) <- fingerprint_store.py (the SQLite file, registering) <-
fingerprint_listener.py (live events for listen.py).
"""

import argparse
import json
import sys
from pathlib import Path

from audio_util import (
    AudioError,
    HelpFormatter,
    audio_inputs,
    iter_loaded_audio,
    quiet_broken_pipe,
)
from fingerprint_listener import load_index
from fingerprint_params import MATCH, FingerprintError, MatchDefaults
from fingerprint_store import DEFAULT_DB, FingerprintStore, LabelInfo, has_label_info, label_groups, read_label_info, register
from matching import each_sound_once, match_waveform


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


@quiet_broken_pipe
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
                            "but other melodies of the same notes now and then (docs/exact-sounds.md)")
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


if __name__ == "__main__":
    sys.exit(main())
