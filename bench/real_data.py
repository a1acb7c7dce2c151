"""Real recorded audio for bench/real.py: where it lies, takes of a sound in simulated rooms, 5 s
background clips and labelled streams. numpy, scipy and pyroomacoustics; no TensorFlow.

Sources (Debian packages, installed by hand for the bench, never in CI; `missing_packages` names them):
- supertux-data: the game's music (/usr/share/games/supertux2/music, 47 tracks of 20 s or more,
  93 min), its sound effects and jingles (sounds/, speech/);
- frozen-bubble-data: 3 music tracks (12 min) and 18 effects; pingus-data: 11 effects (its music is
  tracker modules, which libsndfile cannot read);
- sound-theme-freedesktop and oxygen-sounds: 85 alert and notification sounds;
- ../shared/data/music: music, read speech (LibriSpeech), a robin, a humpback whale;
- ../shared/data/fsdd: spoken digits, 6 speakers (a speaker's digits in a row are one speech source).

A *take* of a sound is what a microphone hears when the recording is played in a room: the sound
convolved with the impulse response of a random shoebox room (pyroomacoustics image source model:
3-8 x 3-6 x 2.4-3.2 m, RT60 0.2-0.7 s by Sabine's formula, source and microphone at random points
1.0-1.8 m high), over a real background excerpt heard through the same room at a given ratio of the
sound's RMS to the background's RMS under it (SNR), the whole scaled to a random level.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from audio_files import FSDD_DIR, PROJECT_DIR

import augment
from audio_util import load_audio_16k_mono
from params import SAMPLE_RATE

SUPERTUX = Path("/usr/share/games/supertux2")
FROZEN_BUBBLE = Path("/usr/share/games/frozen-bubble/snd")
PINGUS = Path("/usr/share/games/pingus/data/sounds")
FREEDESKTOP = Path("/usr/share/sounds/freedesktop/stereo")
OXYGEN = Path("/usr/share/sounds")
SHARED_MUSIC = PROJECT_DIR.parent / "shared" / "data" / "music"
PACKAGES = {"supertux-data": SUPERTUX, "frozen-bubble-data": FROZEN_BUBBLE, "pingus-data": PINGUS,
            "sound-theme-freedesktop": FREEDESKTOP, "oxygen-sounds": OXYGEN / "Oxygen-Sys-Warning.ogg"}

MIN_TRACK_SECONDS = 20.0      # shorter files in a game's music folder are jingles, not tracks
ROOM_SIZE_M = ((3.0, 8.0), (3.0, 6.0), (2.4, 3.2))
ROOM_RT60_S = (0.2, 0.7)
SPEAKER_HEIGHT_M = (1.0, 1.8)
WALL_MARGIN_M = 0.5
LIBRISPEECH = ("198-209-0000.ogg", "3436-172162-0000.ogg", "5703-47212-0000.ogg")


@dataclass(frozen=True)
class Source:
    """One real recording: `group` is the unit a split keeps on one side (a track, a speaker)."""

    path: Path
    kind: str    # music, speech, noise, alert, effect
    group: str

    @property
    def name(self) -> str:
        return self.path.stem


def missing_packages() -> list[str]:
    return [name for name, path in PACKAGES.items() if not path.exists()]


def missing_requirements(bench: str) -> str | None:
    """One error line naming what a bench on these sources needs and lacks (Debian packages of the
    sounds, pyroomacoustics for the rooms); None when all is installed."""
    missing = missing_packages()
    if missing:
        return f"error: {bench} needs {' '.join(missing)}: sudo apt install {' '.join(missing)}"
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        return f"error: {bench} needs pyroomacoustics: pip install -r bench/requirements.txt"
    return None


def _files(folder: Path, patterns=("*.ogg", "*.oga", "*.wav")) -> list[Path]:
    return sorted(p for pattern in patterns for p in folder.glob(pattern))


class AudioStore:
    """Recordings decoded once to 16 kHz mono float32, kept in memory and in `cache_dir`."""

    def __init__(self, cache_dir: Path):
        self.folder = Path(cache_dir) / "decoded"
        self._memory = {}

    def __call__(self, path: Path) -> np.ndarray:
        path = Path(path)
        key = hashlib.sha1(f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode()).hexdigest()
        if key in self._memory:
            return self._memory[key]
        cached = self.folder / f"{key}.npy"
        if cached.is_file():
            waveform = np.load(cached)
        else:
            waveform = load_audio_16k_mono(path)
            self.folder.mkdir(parents=True, exist_ok=True)
            np.save(cached.with_suffix(".tmp.npy"), waveform)
            cached.with_suffix(".tmp.npy").rename(cached)
        self._memory[key] = waveform
        return waveform

    def duration(self, path: Path) -> float:
        return len(self(path)) / SAMPLE_RATE


# --- the collections -------------------------------------------------------------------------------

def game_tracks(store: AudioStore) -> list[Source]:
    """SuperTux's music tracks (each its own group)."""
    tracks = [p for p in sorted((SUPERTUX / "music").rglob("*.ogg")) if store.duration(p) >= MIN_TRACK_SECONDS]
    return [Source(p, "music", p.stem) for p in tracks]


def game_effects(exclude: tuple = ()) -> list[Source]:
    """SuperTux's sound effects and speech, minus `exclude` (file stems: the target jingles)."""
    paths = _files(SUPERTUX / "sounds") + _files(SUPERTUX / "speech")
    return [Source(p, "effect", p.stem) for p in paths if p.stem not in exclude and p.stem != "empty"]


def alert_sounds(exclude: tuple = ()) -> list[Source]:
    """Alert and notification sounds of two desktop themes, minus `exclude` (file stems)."""
    paths = _files(FREEDESKTOP) + sorted(OXYGEN.glob("Oxygen-*.ogg"))
    return [Source(p, "alert", p.stem) for p in paths if p.stem not in exclude]


def household_sources(store: AudioStore, exclude: tuple = ()) -> list[Source]:
    """What a living room hears besides its alerts: speech (LibriSpeech, FSDD speakers counting, a
    game's voices), music (../shared, Frozen Bubble), noises (rain, water, applause, a typewriter...;
    other games' effects), and other alert sounds. One group per recording (per FSDD speaker)."""
    sources = [Source(SHARED_MUSIC / name, "speech", name) for name in LIBRISPEECH]
    sources += [Source(p, "music", p.stem) for p in sorted(SHARED_MUSIC.glob("*.ogg")) if p.name not in LIBRISPEECH]
    sources += [Source(p, "music", p.stem) for p in _files(FROZEN_BUBBLE) if store.duration(p) >= MIN_TRACK_SECONDS]
    sources += [Source(p, "noise", p.stem) for p in _files(FROZEN_BUBBLE) if store.duration(p) < MIN_TRACK_SECONDS]
    sources += [Source(p, "noise", p.stem) for p in _files(PINGUS)]
    sources += [Source(SUPERTUX / "sounds" / name, "noise", Path(name).stem)
                for name in ("rain.wav", "waterfall.wav", "lava.wav", "fizz.wav", "sizzle.ogg", "splash.ogg",
                             "door.wav", "thunder.wav", "explosion.wav", "phone.wav")]
    sources += [Source(p, "speech", p.stem) for p in _files(SUPERTUX / "speech")]
    sources += alert_sounds(exclude)
    return sources + fsdd_speakers()


def fsdd_speakers() -> list[Source]:
    """One speech source per FSDD speaker: `FSDD_DIR/<speaker>` stands for all their digits in a row."""
    speakers = sorted({p.stem.split("_")[1] for p in FSDD_DIR.glob("*_*_*.wav")})
    return [Source(FSDD_DIR / speaker, "speech", f"fsdd-{speaker}") for speaker in speakers]


def fsdd_takes(speaker: str, digit: int) -> list[Path]:
    return sorted(FSDD_DIR.glob(f"{digit}_{speaker}_*.wav"), key=lambda p: int(p.stem.split("_")[2]))


def source_audio(source: Source, store: AudioStore, rng: np.random.Generator, skip_digit: int | None = None) -> np.ndarray:
    """A source's waveform; an FSDD speaker is their digits (but `skip_digit`) in a random order,
    0.2-0.8 s apart."""
    if source.path.parent != FSDD_DIR:
        return store(source.path)
    speaker = source.path.name
    paths = [p for p in sorted(FSDD_DIR.glob(f"*_{speaker}_*.wav")) if int(p.stem.split("_")[0]) != skip_digit]
    pieces = []
    for i in rng.permutation(len(paths)):
        pieces += [store(paths[i]), np.zeros(int(rng.uniform(0.2, 0.8) * SAMPLE_RATE), np.float32)]
    return np.concatenate(pieces)


def split_groups(sources: list[Source], folds: int, seed: int) -> list[list[Source]]:
    """Sources dealt to `folds` folds by group, kind by kind (each fold gets some of every kind), in a
    seeded random order."""
    rng = np.random.default_rng(seed)
    out = [[] for _ in range(folds)]
    dealt = 0
    for kind in sorted({s.kind for s in sources}):
        groups = sorted({s.group for s in sources if s.kind == kind})
        for group in (groups[i] for i in rng.permutation(len(groups))):
            out[dealt % folds] += [s for s in sources if s.group == group and s.kind == kind]
            dealt += 1
    return out


# --- rooms, takes, clips, streams --------------------------------------------------------------------

def room_impulse_responses(count: int, seed: int, distance_m=(1.0, 4.0), rt60_s=ROOM_RT60_S) -> list[np.ndarray]:
    """`count` impulse responses of random shoebox rooms (see the module docstring), the microphone
    `distance_m` from the source, each scaled so its direct path has gain 1."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    responses = []
    while len(responses) < count:
        size = [rng.uniform(*span) for span in ROOM_SIZE_M]
        absorption, max_order = pra.inverse_sabine(rng.uniform(*rt60_s), size)
        room = pra.ShoeBox(size, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=max_order)
        where = [np.array([rng.uniform(WALL_MARGIN_M, side - WALL_MARGIN_M) for side in size[:2]]
                          + [rng.uniform(*SPEAKER_HEIGHT_M)]) for _ in range(2)]
        if not distance_m[0] <= np.linalg.norm(where[0] - where[1]) <= distance_m[1]:
            continue
        room.add_source(where[0])
        room.add_microphone(where[1][:, None])
        room.compute_rir()
        response = np.asarray(room.rir[0][0], np.float64)
        responses.append((response / np.abs(response).max()).astype(np.float32))
    return responses


def in_room(waveform: np.ndarray, response: np.ndarray) -> np.ndarray:
    """(n,) -> (n + len(response) - 1,): the waveform as heard in the room, echo tail included."""
    return signal.oaconvolve(waveform, response).astype(np.float32)


def excerpt(waveform: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random stretch of `samples` (a short recording repeated to length)."""
    if len(waveform) < samples:
        waveform = np.resize(waveform, samples)
    start = int(rng.integers(0, len(waveform) - samples + 1))
    return np.array(waveform[start:start + samples], np.float32)


def scaled_to(waveform: np.ndarray, level_dbfs: float) -> np.ndarray:
    """Scaled to an RMS of `level_dbfs`, then down (never clipped) if a peak would pass 0.99."""
    out = augment.normalize_rms(waveform, level_dbfs)
    peak = float(np.abs(out).max()) if len(out) else 0.0
    return (out * (0.99 / peak) if peak > 0.99 else out).astype(np.float32)


def snr_gain(under: np.ndarray, sound: np.ndarray, snr_db: float, floor: float) -> float:
    """The gain that puts `sound` `snr_db` above `under` (the background over the same samples) in RMS;
    a background quieter than `floor` (a pause in the music) counts as `floor`."""
    return max(augment.rms(under), floor) * 10 ** (snr_db / 20) / max(augment.rms(sound), 1e-9)


def take(sound: np.ndarray, response: np.ndarray, bed: np.ndarray, snr_db: float, level_dbfs: float,
         rng: np.random.Generator, margin_s=(0.3, 1.2)) -> np.ndarray:
    """One take of `sound` (see the module docstring), a random margin of the room before and after it."""
    wet = in_room(sound, response)
    before, after = (int(rng.uniform(*margin_s) * SAMPLE_RATE) for _ in range(2))
    n = before + len(wet) + after
    room = in_room(excerpt(bed, n, rng), response)[:n]
    gain = snr_gain(room[before:before + len(sound)], wet[:len(sound)], snr_db, 1e-4)
    room[before:before + len(wet)] += gain * wet
    return scaled_to(room, level_dbfs)


def background_clip(audio: np.ndarray, response: np.ndarray, seconds: float, level_dbfs: float,
                    rng: np.random.Generator) -> np.ndarray:
    """A random `seconds` of a recording, heard through the room, at `level_dbfs`."""
    n = int(seconds * SAMPLE_RATE)
    return scaled_to(in_room(excerpt(audio, n, rng), response)[:n], level_dbfs)


def joined(pieces: list[np.ndarray], fade_s: float = 0.05) -> np.ndarray:
    """Recordings one after another, each faded in and out (no clicks between them)."""
    fade = int(fade_s * SAMPLE_RATE)
    out = []
    for piece in pieces:
        piece = np.array(piece, np.float32)
        ramp = np.linspace(0.0, 1.0, min(fade, len(piece) // 2), dtype=np.float32)
        if len(ramp):
            piece[:len(ramp)] *= ramp
            piece[len(piece) - len(ramp):] *= ramp[::-1]
        out.append(piece)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def sprinkled(bed: np.ndarray, sounds: list[np.ndarray], rng: np.random.Generator, every_s=(8.0, 30.0),
              snr_db=(-3.0, 10.0)) -> np.ndarray:
    """`bed` with `sounds` (a game's effects, say) dropped in at random, one every `every_s` seconds."""
    out = np.array(bed, np.float32)
    floor = 0.1 * augment.rms(out)
    at = int(rng.uniform(*every_s) * SAMPLE_RATE)
    while sounds and at < len(out):
        sound = sounds[int(rng.integers(len(sounds)))][:len(out) - at]
        out[at:at + len(sound)] += snr_gain(out[at:at + len(sound)], sound, rng.uniform(*snr_db), floor) * sound
        at += len(sound) + int(rng.uniform(*every_s) * SAMPLE_RATE)
    return out


@dataclass
class Stream:
    """A labelled recording: references are (start s, end s, label) of the sounds spliced into it."""

    waveform: np.ndarray
    references: list
    snr_db: list


def stream_with(bed: np.ndarray, sounds: list[tuple[np.ndarray, str]], response: np.ndarray, snr_db: list[float],
                level_dbfs: float, rng: np.random.Generator, edge_s: float = 3.0) -> Stream:
    """`bed` heard through the room with each (sound, label) played in it at its SNR, one per equal
    slot of the stream at a random place in the slot, the whole scaled to `level_dbfs`."""
    room = in_room(bed, response)[:len(bed)]
    floor = 0.1 * augment.rms(room)
    edge = int(edge_s * SAMPLE_RATE)
    slot = (len(room) - 2 * edge) // max(len(sounds), 1)
    references = []
    for k, ((sound, label), snr) in enumerate(zip(sounds, snr_db)):
        wet = in_room(sound, response)
        if len(wet) + SAMPLE_RATE > slot:
            raise ValueError(f"a stream of {len(bed) / SAMPLE_RATE:.0f} s has no room for {len(sounds)} sounds")
        onset = edge + k * slot + int(rng.integers(0, slot - len(wet) - SAMPLE_RATE + 1))
        room[onset:onset + len(wet)] += snr_gain(room[onset:onset + len(sound)], wet[:len(sound)], snr, floor) * wet
        references.append((onset / SAMPLE_RATE, (onset + len(sound)) / SAMPLE_RATE, label))
    return Stream(scaled_to(room, level_dbfs), references, list(snr_db))
