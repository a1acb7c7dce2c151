"""The real row of bench/fingerprint.py: real sounds replayed in a room under real music, and the floor.

References: every short real sound of Debian's game and desktop sound packages (SuperTux's effects,
jingles and voices, Frozen Bubble's and Pingus's effects, the freedesktop and Oxygen alert sounds),
dealt in a seeded order: nine in ten offered to fingerprint.py's own `register`; the rest, and those it
refuses (too short or plain), are confusers. Replays: a registered sound with 3-6 s of real music around
it (the games' music tracks, ../shared/data/music), on a line in or heard in a simulated room near the
loudspeaker or across it (PLACEMENTS; pyroomacoustics, bench/real_data.py), at an SNR of +10 to -18 dB
(the sound's RMS against the music's RMS under it), the whole at a random level; each replay streamed in
0.1 s chunks through FingerprintListener, as listen.py does, and found when its sound starts an event
within FOUND_WITHIN_S of where it was put. False matches: all the music tracks, the unregistered effects
sprinkled into them and FSDD's speakers counting, streamed the same way. A match on audio that copies a
registered sound over its whole length (some packages ship the same sound twice), or all of it that had
played when the match fired, is counted apart (`judge`).

The floor (`Sketch`): the plain landmark matcher the issue measured (STFT peaks that are the maximum of
their 15-bin x 9-frame neighbourhood and above the 80th percentile of the spectrogram, each paired with
the next peaks up to 1 s on, hashed as (f1, f2, dt); a match is 12 votes at one time offset), run on
each replay as a file and on the confuser streams in 10 s windows every 5 s.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import fingerprint_store
import real_data
from fingerprint_listener import FingerprintListener
from fingerprint_params import FINGERPRINT
from fingerprint_store import FingerprintStore, LabelInfo
from params import SAMPLE_RATE

SNRS_DB = (10.0, 6.0, 0.0, -6.0, -12.0, -18.0)
TARGETS_FOUND = {0.0: 0.98, -6.0: 0.90, -12.0: 0.70, -18.0: 0.40}  # at this SNR (0: at 0 dB and above)
REGISTERED_SHARE = 0.9         # of the short real sounds offered; the rest, and those refused, are confusers
MAX_SOUND_SECONDS = 20.0       # longer files are music tracks (real_data.MIN_TRACK_SECONDS)
MARGIN_S = ((2.0, 4.0), (1.0, 2.0))  # music before and after a replay
LEVEL_DBFS = (-40.0, -12.0)    # a replay's RMS
ROOMS = 24                     # impulse responses per placement
# Where the microphone is: (distance from the loudspeaker m, reverberation time RT60 s), or None: no room
# (a line in: a game console's or TV's sound captured as it is mixed). Beside the loudspeaker the direct
# sound dominates (direct-to-reverberant ratio about 0..+9 dB); across the room (bench/real.py's takes) the
# echo does (-11..-1 dB).
PLACEMENTS = {"line in": None, "near": ((0.3, 0.7), (0.2, 0.4)), "across the room": ((1.0, 4.0), real_data.ROOM_RT60_S)}
FOUND_WITHIN_S = 0.1           # a match's onset this close to where the sound was put
CHUNK_SECONDS = 0.1            # listen.py's chunk
CONFUSER_EFFECT_EVERY_S = (5.0, 20.0)
COPY_SIMILARITY = 0.8          # audio this similar to a sound (spectral_similarity) copies it (both tables)


@dataclass
class Corpus:
    registered: dict           # {name: waveform} of the sounds in the database
    refused: list              # names the database refused (too short or plain)
    confuser_effects: list     # [Source] never registered
    tracks: list               # [Source] music and speech recordings (beds and confusers)
    registered_s: float


def short_sounds(store: real_data.AudioStore) -> list:
    """Every real sound effect, jingle, voice and alert of the packages, as [Source] (kind 'effect')."""
    sources = real_data.game_effects() + real_data.alert_sounds()
    music = sorted((real_data.SUPERTUX / "music").rglob("*.ogg"))
    sources += [real_data.Source(p, "effect", p.stem) for p in music if store.duration(p) < MAX_SOUND_SECONDS]
    sources += [real_data.Source(p, "effect", p.stem) for p in real_data._files(real_data.FROZEN_BUBBLE)
                + real_data._files(real_data.PINGUS) if store.duration(p) < MAX_SOUND_SECONDS]
    return sources


def music_tracks(store: real_data.AudioStore) -> list:
    """The packages' music tracks and ../shared/data/music (music, read speech, a bird, a whale)."""
    tracks = real_data.game_tracks(store)
    tracks += [real_data.Source(p, "music", p.stem) for p in real_data._files(real_data.FROZEN_BUBBLE)
               if store.duration(p) >= MAX_SOUND_SECONDS]
    tracks += [real_data.Source(p, "music", p.stem) for p in sorted(real_data.SHARED_MUSIC.glob("*.ogg"))]
    return tracks


def sound_name(source) -> str:
    return f"{source.path.parent.name}/{source.path.name}"


def build(db: Path, store: real_data.AudioStore, seed: int) -> Corpus:
    """Offer nine in ten of the short real sounds (seeded order) to `db`; the others are confusers."""
    sounds = short_sounds(store)
    order = np.random.default_rng(seed).permutation(len(sounds))
    cut = round(REGISTERED_SHARE * len(sounds))
    registered, refused, seconds = {}, [], 0.0
    with FingerprintStore(db, create=True) as fp_store:
        for i in order[:cut]:
            source = sounds[i]
            waveform = store(source.path)
            name = sound_name(source)
            # each sound its own label, as a user registers them (a listener holds one event per label)
            outcome, _ = fingerprint_store.register(fp_store, name, LabelInfo({}), name, waveform)
            if outcome == "added":
                registered[name] = waveform
                seconds += len(waveform) / SAMPLE_RATE
            else:
                refused.append(sounds[i])
    return Corpus(registered, [sound_name(s) for s in refused], [sounds[i] for i in order[cut:]] + refused,
                  music_tracks(store), seconds)


def replays(corpus: Corpus, store: real_data.AudioStore, per_snr: int, seed: int, placement: str = "near"):
    """Yields (snr, name, waveform, onset_s) for `per_snr` replays at each SNR, the same for every matcher."""
    rng = np.random.default_rng(seed + 1)
    room = PLACEMENTS[placement]
    responses = real_data.room_impulse_responses(ROOMS, seed + 2, *room) if room else [np.ones(1, np.float32)]
    names = sorted(corpus.registered)
    for snr in SNRS_DB:
        for _ in range(per_snr):
            name = names[int(rng.integers(len(names)))]
            sound = corpus.registered[name]
            response = responses[int(rng.integers(len(responses)))]
            track = corpus.tracks[int(rng.integers(len(corpus.tracks)))]
            wet = real_data.in_room(sound, response)
            before, after = (int(rng.uniform(*span) * SAMPLE_RATE) for span in MARGIN_S)
            n = before + len(wet) + after
            mixed = real_data.in_room(real_data.excerpt(store(track.path), n, rng), response)[:n]
            # a pause in the music counts as a quiet room (-50 dBFS), not as silence
            gain = real_data.snr_gain(mixed[before:before + len(sound)], wet[:len(sound)], snr, 10 ** (-50 / 20))
            mixed[before:before + len(wet)] += gain * wet
            level = rng.uniform(*LEVEL_DBFS)
            yield snr, name, real_data.scaled_to(mixed, level), before / SAMPLE_RATE


def confuser_stream(corpus: Corpus, store: real_data.AudioStore, seed: int) -> np.ndarray:
    """All music tracks one after another with the unregistered effects dropped in, then FSDD's speakers."""
    rng = np.random.default_rng(seed + 3)
    effects = [store(s.path) for s in corpus.confuser_effects]
    pieces = [real_data.sprinkled(real_data.scaled_to(store(t.path), rng.uniform(-30, -14)), effects, rng,
                                  CONFUSER_EFFECT_EVERY_S, (-6.0, 10.0)) for t in corpus.tracks]
    pieces += [real_data.scaled_to(real_data.source_audio(s, store, rng), -24.0) for s in real_data.fsdd_speakers()]
    return real_data.joined(pieces)


def stream_events(index, waveform: np.ndarray, rules) -> tuple[list, float]:
    """Start events of a listener fed `waveform` in listen.py's chunks, each with `fired_s`; CPU seconds."""
    listener = FingerprintListener(index, rules=rules)
    step = round(CHUNK_SECONDS * SAMPLE_RATE)
    started, starts = time.process_time(), []
    for at in range(0, len(waveform), step):
        starts += [dict(e, fired_s=listener.matcher.seconds_done)
                   for e in listener.push(waveform[at:at + step]) if e["event"] == "start"]
    return starts, time.process_time() - started


# --- the floor: the landmark sketch ---------------------------------------------------------

class Sketch:
    """STFT peaks (max of a 15-bin x 9-frame neighbourhood, above the 80th percentile), each paired with
    its next FANOUT peaks up to 1 s on, hashed (f1, f2, dt); a match is MIN_VOTES at one offset."""

    N_FFT, HOP, BINS, FANOUT, MAX_DT, MIN_VOTES, PERCENTILE = 1024, 256, 256, 10, 63, 12, 80

    def __init__(self, sounds: dict):
        self.names = sorted(sounds)
        hashes, times, ids = [], [], []
        for k, name in enumerate(self.names):
            h, t = self.landmarks(sounds[name])
            hashes.append(h), times.append(t), ids.append(np.full(len(h), k))
        order = np.argsort(np.concatenate(hashes), kind="stable")
        self.hashes = np.concatenate(hashes)[order]
        self.times, self.ids = np.concatenate(times)[order], np.concatenate(ids)[order]

    def landmarks(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.ndimage import maximum_filter

        frames = np.lib.stride_tricks.sliding_window_view(np.asarray(waveform, np.float32), self.N_FFT)[::self.HOP]
        if len(frames) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        level = np.log(np.abs(np.fft.rfft(frames * np.hanning(self.N_FFT), axis=1))[:, :self.BINS] + 1e-9)
        peak = (level == maximum_filter(level, size=(9, 15))) & (level > np.percentile(level, self.PERCENTILE))
        t, f = np.nonzero(peak)  # by time
        hashes, times = [], []
        for k in range(1, self.FANOUT + 1):
            dt = t[k:] - t[:-k]
            ok = (dt > 0) & (dt <= self.MAX_DT)
            hashes.append((f[:-k][ok] << 14) | (f[k:][ok] << 6) | dt[ok])
            times.append(t[:-k][ok])
        return np.concatenate(hashes), np.concatenate(times)

    def match(self, waveform: np.ndarray) -> list[tuple[str, float, int]]:
        """[(sound name, onset s, votes)] of every sound with MIN_VOTES at its best offset."""
        hashes, times = self.landmarks(waveform)
        lo, hi = np.searchsorted(self.hashes, hashes, "left"), np.searchsorted(self.hashes, hashes, "right")
        counts = hi - lo
        entries = np.repeat(lo, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        ids, offsets = self.ids[entries], np.repeat(times, counts) - self.times[entries]
        keys, votes = np.unique(ids * 100_000 + offsets + 50_000, return_counts=True)
        found = {}
        for key, n in zip(keys[votes >= self.MIN_VOTES], votes[votes >= self.MIN_VOTES]):
            sound = int(key // 100_000)
            if n > found.get(sound, (0, 0))[1]:
                found[sound] = (int(key % 100_000) - 50_000, int(n))
        return [(self.names[s], o * self.HOP / SAMPLE_RATE, n) for s, (o, n) in found.items()]

    def stream(self, waveform: np.ndarray, window_s: float = 10.0, hop_s: float = 5.0) -> list[tuple[str, float, int]]:
        """Matches in a long recording, in windows; one per (sound, onset within FOUND_WITHIN_S)."""
        found = []
        window, hop = round(window_s * SAMPLE_RATE), round(hop_s * SAMPLE_RATE)
        for at in range(0, max(1, len(waveform) - window + hop), hop):
            for name, onset, votes in self.match(waveform[at:at + window]):
                onset += at / SAMPLE_RATE
                if not any(n == name and abs(o - onset) <= FOUND_WITHIN_S for n, o, _ in found):
                    found.append((name, onset, votes))
        return found



# --- the trials ------------------------------------------------------------------------------------

def spectral_similarity(reference: np.ndarray, heard: np.ndarray) -> float:
    """How closely `heard` reproduces `reference` over the reference's whole length, 0-1: the cosine of
    their 0-4 kHz magnitude spectra per 64 ms frame, weighted by the reference's energy. A melody sharing
    two notes of a ten-note jingle scores about 0.2; the same ding-dong on the same bell, about 1."""
    n_fft, hop, bins = FINGERPRINT.n_fft, FINGERPRINT.hop, FINGERPRINT.bins
    heard = np.concatenate([heard, np.zeros(max(0, len(reference) - len(heard)), np.float32)])[:len(reference)]
    window = np.hanning(n_fft)

    def spectrum(w):
        frames = np.lib.stride_tricks.sliding_window_view(np.concatenate([w, np.zeros(n_fft)]), n_fft)[::hop]
        return np.abs(np.fft.rfft(frames * window, axis=1))[:, :bins]

    r, h = spectrum(reference), spectrum(heard)
    cosine = (r * h).sum(axis=1) / np.maximum(np.linalg.norm(r, axis=1) * np.linalg.norm(h, axis=1), 1e-12)
    energy = (r ** 2).sum(axis=1)
    return float((cosine * energy).sum() / max(energy.sum(), 1e-12))


def judge(corpus: Corpus, audio: np.ndarray, name: str, onset_s: float, played_s: float | None = None) -> str:
    """What a match of `name` at `onset_s` in `audio` stands on: 'copy' (the audio reproduces the sound
    over its whole length), 'opening' (only what had played of it when the match fired, `played_s`), or
    'false' (neither)."""
    reference = corpus.registered[name]
    at = max(0, round(onset_s * SAMPLE_RATE))
    if spectral_similarity(reference, audio[at:at + len(reference)]) >= COPY_SIMILARITY:
        return "copy"
    played = len(reference) if played_s is None else max(1, min(len(reference), round(played_s * SAMPLE_RATE)))
    return "opening" if spectral_similarity(reference[:played], audio[at:at + played]) >= COPY_SIMILARITY else "false"


@dataclass
class Outcome:
    """One matcher on the real row."""

    found: dict        # {snr: [found?]} (the floor: [votes where the replay was put, 0 if none])
    wrong: list        # judge() of each match of another registered sound during the replays
    latencies: list    # onset -> start event, s, of found replays (streamed matcher only)
    unrelated: list    # [(name, onset s, votes, judge())] of every match in the confuser stream
    cpu_s: float       # matching the confuser stream

    def count(self, what: str, matches: list | None = None) -> int:
        return sum(m[-1] == what for m in (self.unrelated if matches is None else matches))


def trial_fingerprint(corpus: Corpus, index, trials: list, confusers: np.ndarray | None, rules) -> Outcome:
    """fingerprint.py's matcher, streamed as listen.py does, on the replays and the confuser stream (if given)."""
    found, wrong, latencies = {}, [], []
    for snr, name, waveform, onset_s in trials:
        starts, _ = stream_events(index, waveform, rules)
        hits = [e for e in starts if e["reference"] == name and abs(e["offset_s"] - onset_s) <= FOUND_WITHIN_S]
        found.setdefault(snr, []).append(bool(hits))
        wrong += [judge(corpus, waveform, e["reference"], e["offset_s"], e["fired_s"] - e["offset_s"])
                  for e in starts if e["reference"] != name]
        latencies += [hits[0]["fired_s"] - onset_s] if hits else []
    if confusers is None:
        return Outcome(found, wrong, latencies, [], 0.0)
    starts, cpu = stream_events(index, confusers, rules)
    unrelated = [(e["reference"], e["offset_s"], e["votes"],
                  judge(corpus, confusers, e["reference"], e["offset_s"], e["fired_s"] - e["offset_s"])) for e in starts]
    return Outcome(found, wrong, latencies, unrelated, cpu)


def trial_sketch(corpus: Corpus, trials: list, confusers: np.ndarray | None) -> Outcome:
    """The floor, each replay matched as a file, the confusers in windows. `found` holds each replay's
    votes where it was put (0: not found), so that the floor can also be read at a higher vote count."""
    sketch = Sketch(corpus.registered)
    found, wrong = {}, []
    for snr, name, waveform, onset_s in trials:
        matches = sketch.match(waveform)
        found.setdefault(snr, []).append(max([v for n, o, v in matches if n == name and abs(o - onset_s) <= FOUND_WITHIN_S],
                                             default=0))
        wrong += [judge(corpus, waveform, n, o) for n, o, _ in matches if n != name]
    if confusers is None:
        return Outcome(found, wrong, [], [], 0.0)
    started = time.process_time()
    matches = sketch.stream(confusers)
    cpu = time.process_time() - started
    return Outcome(found, wrong, [], [(n, o, v, judge(corpus, confusers, n, o)) for n, o, v in matches], cpu)


def at_no_false_match(floor: Outcome) -> tuple[int, dict]:
    """The floor with its vote count raised until the confusers give no false match: (votes, {snr: found share})."""
    votes = max([v for _, _, v, what in floor.unrelated if what == "false"], default=Sketch.MIN_VOTES - 1) + 1
    return votes, {snr: float(np.mean(np.asarray(v) >= votes)) for snr, v in floor.found.items()}


# --- the table ---------------------------------------------------------------------------------------

def target_key(snr_db: float) -> float:
    """The key of TARGETS_FOUND that holds at an SNR: 0 dB's at and above 0 dB."""
    return 0.0 if snr_db >= 0 else snr_db


def share_text(found: list) -> str:
    return f"{np.mean(found):.0%}" if len(found) else "-"


def run(per_snr: int, seed: int, cache_dir: Path, matchers: dict, placements=tuple(PLACEMENTS)) -> list[str]:
    """The real row's table (lines of Markdown) for `matchers` {name: MatchDefaults} and the floor."""
    import tempfile

    store = real_data.AudioStore(cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "fingerprints.sqlite"
        corpus = build(db, store, seed)
        with FingerprintStore(db) as fp_store:
            index = fp_store.load_index()
    confusers = confuser_stream(corpus, store, seed)
    hours = len(confusers) / SAMPLE_RATE / 3600
    lines = [f"Real row: {len(corpus.registered)} real sounds registered ({corpus.registered_s / 60:.1f} min; "
             f"{len(corpus.refused)} refused as too short or plain); confusers {hours:.1f} h ({len(corpus.tracks)} "
             f"music and speech recordings, {len(corpus.confuser_effects)} unregistered effects, FSDD's speakers); "
             f"{per_snr} replays per SNR and placement.", "",
             "| placement | matcher | " + " | ".join(f"{snr:+g} dB" for snr in SNRS_DB)
             + f" | false matches in {hours:.1f} h (+ on copies of a sound's opening, + of all of it) "
             "| wrong sound during replays (+ copies) | onset -> event, mean / max | matching speed |",
             "|" + "---|" * (len(SNRS_DB) + 6),
             "| target | | " + " | ".join(f">= {TARGETS_FOUND[target_key(snr)]:.0%}" for snr in SNRS_DB)
             + " | 0 in >= 2 h | | max <= 1.5 s | >= 200x with 1000 sounds (generated rows) |"]
    seconds = hours * 3600
    floor_confusers = trial_sketch(corpus, [], confusers)
    matcher_confusers = {name: trial_fingerprint(corpus, index, [], confusers, rules) for name, rules in matchers.items()}
    for placement in placements:
        trials = list(replays(corpus, store, per_snr, seed, placement))
        floor = trial_sketch(corpus, trials, None)
        floor.unrelated, floor.cpu_s = floor_confusers.unrelated, floor_confusers.cpu_s
        votes, at_zero = at_no_false_match(floor)
        rows = [("the floor (issue's sketch, 12 votes)", {k: np.asarray(v) > 0 for k, v in floor.found.items()}, floor),
                (f"the floor at 0 false matches ({votes} votes)", {k: [at_zero[k]] for k in at_zero}, None)]
        for name, rules in matchers.items():
            outcome = trial_fingerprint(corpus, index, trials, None, rules)
            outcome.unrelated, outcome.cpu_s = matcher_confusers[name].unrelated, matcher_confusers[name].cpu_s
            rows.append((name, outcome.found, outcome))
        for name, found, outcome in rows:
            cells = [share_text(found.get(snr, [])) for snr in SNRS_DB]
            if outcome is None:
                rest = ["0 (chosen so)", "", "", ""]
            else:
                late = outcome.latencies
                rest = [f"{outcome.count('false')} (+{outcome.count('opening')}, +{outcome.count('copy')})",
                        f"{sum(w == 'false' for w in outcome.wrong)} (+{sum(w != 'false' for w in outcome.wrong)})",
                        f"{np.mean(late):.2f} / {np.max(late):.2f} s ({np.mean(np.asarray(late) <= 1.5):.0%} <= 1.5 s)"
                        if late else "-",
                        f"{seconds / max(outcome.cpu_s, 1e-9):.0f}x"]
            lines.append(f"| {placement} | {name} | " + " | ".join(cells + rest) + " |")
    for name, outcome in [("floor", floor_confusers)] + list(matcher_confusers.items()):
        shown = [f"{n} at {o:.1f} s ({v} votes, {what})" for n, o, v, what in outcome.unrelated if what != "copy"]
        if shown:
            lines.append(f"{name}: matches in the confusers: " + "; ".join(shown[:12]) + (" ..." if len(shown) > 12 else ""))
    return lines
