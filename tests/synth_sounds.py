"""Generated sounds for the fingerprint tests and benchmark: chiptune-like square-wave jingles, two-tone
chimes, beep patterns, confusers of the same kinds (other melodies, noise, mains hum), and a room's echo.

Every generator takes a numpy Generator, so a seed gives the same sound on every machine.
"""

import numpy as np

from params import SAMPLE_RATE

A4_HZ = 440.0
SCALE_STEPS = (0, 2, 4, 5, 7, 9, 11)  # a major scale: generated melodies share their notes, like game music


def _note_hz(semitones_from_a4: float) -> float:
    return A4_HZ * 2.0 ** (semitones_from_a4 / 12.0)


def _envelope(n: int, sr: int, attack_s: float = 0.005, decay_per_s: float = 0.0) -> np.ndarray:
    t = np.arange(n) / sr
    env = np.minimum(1.0, t / attack_s) * np.exp(-decay_per_s * t)
    release = min(n, round(0.01 * sr))  # 10 ms fade out: no click
    env[n - release:] *= np.linspace(1.0, 0.0, release)
    return env


def square(freq_hz: float, seconds: float, sr: int = SAMPLE_RATE, duty: float = 0.5) -> np.ndarray:
    """A naive (aliasing, like an old console) pulse wave of amplitude 1."""
    t = np.arange(round(seconds * sr)) / sr
    return np.where((t * freq_hz) % 1.0 < duty, 1.0, -1.0)


def jingle(rng: np.random.Generator, sr: int = SAMPLE_RATE, notes: int | None = None) -> np.ndarray:
    """A chiptune-like melody: 5-12 square-wave notes of a major scale at a random tempo, ~1-3 s."""
    notes = notes or int(rng.integers(5, 13))
    beat_s = 60.0 / rng.uniform(110, 220)
    root = int(rng.integers(-12, 6))
    duty = float(rng.choice([0.125, 0.25, 0.5]))
    pieces = []
    for _ in range(notes):
        step = SCALE_STEPS[int(rng.integers(0, 7))] + 12 * int(rng.integers(0, 2))
        length = beat_s * float(rng.choice([0.5, 0.5, 1.0, 1.0, 2.0]))
        tone = square(_note_hz(root + step), length, sr, duty)
        pieces.append(tone * _envelope(len(tone), sr, decay_per_s=float(rng.uniform(0, 3))))
    return (0.5 * np.concatenate(pieces)).astype(np.float32)


# Partials of a struck bell or tubular chime, relative to its nominal note, and their levels.
BELL_PARTIALS = ((0.5, 0.5), (1.0, 1.0), (1.19, 0.6), (1.5, 0.4), (2.0, 0.5), (2.51, 0.3), (3.0, 0.25), (4.07, 0.15))


def chime(rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A doorbell chime: 2-4 struck bell notes ("ding-dong", "ding-dong-ding-dong"), each ringing on, ~1.5-3 s."""
    notes = [_note_hz(int(rng.integers(-7, 10))) for _ in range(int(rng.integers(2, 5)))]
    strikes_s = np.cumsum([0.0] + list(rng.uniform(0.3, 0.7, size=len(notes) - 1)))
    total = round((strikes_s[-1] + rng.uniform(1.0, 1.6)) * sr)
    out = np.zeros(total)
    for freq, at_s in zip(notes, strikes_s):
        at = round(at_s * sr)
        t = np.arange(total - at) / sr
        ring = sum(a * np.sin(2 * np.pi * freq * k * t) * np.exp(-(1.5 + 1.5 * k) * t) for k, a in BELL_PARTIALS)
        out[at:] += ring * np.minimum(1.0, t / 0.002)
    return (0.4 * out / np.abs(out).max()).astype(np.float32)


def beeps(rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """An appliance or alarm beep pattern: 3-6 sine beeps of one or two pitches with uneven gaps."""
    pitches = rng.uniform(1500, 4000, size=2)
    pieces = []
    for i in range(int(rng.integers(3, 7))):
        tone_s, gap_s = rng.uniform(0.08, 0.3), rng.uniform(0.05, 0.25)
        t = np.arange(round(tone_s * sr)) / sr
        pieces.append(np.sin(2 * np.pi * pitches[i % 2 if rng.random() < 0.7 else 0] * t) * _envelope(len(t), sr))
        pieces.append(np.zeros(round(gap_s * sr)))
    return (0.5 * np.concatenate(pieces[:-1])).astype(np.float32)


def melody_stream(rng: np.random.Generator, seconds: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Game-like background music: jingles of the same generator back to back, plus a bass line."""
    pieces, total = [], 0
    while total < seconds * sr:
        piece = jingle(rng, sr, notes=int(rng.integers(8, 20)))
        pieces.append(piece)
        total += len(piece)
    music = np.concatenate(pieces)[:round(seconds * sr)]
    t = np.arange(len(music)) / sr
    bass = 0.2 * np.sign(np.sin(2 * np.pi * _note_hz(-24 + int(rng.integers(0, 7))) * t))
    return (0.7 * music + bass).astype(np.float32)


def noise_stream(rng: np.random.Generator, seconds: float, sr: int = SAMPLE_RATE, color: str = "white") -> np.ndarray:
    """White, pink or brown noise of RMS 0.1."""
    n = round(seconds * sr)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    spectrum *= {"white": 1.0, "pink": f ** -0.5, "brown": f ** -1.0}[color]
    w = np.fft.irfft(spectrum, n)
    return (0.1 * w / np.sqrt(np.mean(w ** 2))).astype(np.float32)


def hum_stream(rng: np.random.Generator, seconds: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics) with a little hiss."""
    t = np.arange(round(seconds * sr)) / sr
    base = float(rng.choice([50.0, 60.0]))
    hum = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 8))
    return (0.1 * hum + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def in_a_room(rng: np.random.Generator, sound: np.ndarray, reverb_s: float, direct_to_reverb_db: float,
              sr: int = SAMPLE_RATE) -> np.ndarray:
    """`sound` as a microphone in a room hears it: the direct sound plus a reverberant tail (exponentially
    decaying noise, down 60 dB after `reverb_s`, its energy `direct_to_reverb_db` below the direct sound's),
    ringing on after the sound for up to 0.3 s."""
    from scipy.signal import fftconvolve

    n = round(reverb_s * sr)
    tail = rng.standard_normal(n) * 10.0 ** (-3.0 * np.arange(n) / n)
    tail[:round(0.003 * sr)] = 0.0  # the first reflection comes a few ms after the direct sound
    tail *= 10.0 ** (-direct_to_reverb_db / 20.0) / np.sqrt(np.sum(tail ** 2))
    tail[0] = 1.0
    return fftconvolve(sound, tail)[:len(sound) + round(0.3 * sr)].astype(np.float32)


def rms(w: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(w, dtype=np.float64)))) if len(w) else 0.0


def mix_at_snr(background: np.ndarray, sound: np.ndarray, at: int, snr_db: float) -> np.ndarray:
    """`sound` added into a copy of `background` from sample `at`, scaled so that sound RMS over background
    RMS (both over the sound's span) is `snr_db`."""
    out = background.astype(np.float32).copy()
    span = out[at:at + len(sound)]
    gain = rms(span) / max(rms(sound), 1e-12) * 10 ** (snr_db / 20)
    span += gain * sound[:len(span)]
    return out
