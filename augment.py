"""Waveform views and augmentations for training on YAMNet embeddings: pure numpy/scipy, no TensorFlow.

All waveforms are mono float32 at 16 kHz, shape (n,), in [-1, 1]. Every random function takes a
`numpy.random.Generator` so a run is reproducible from its seed.

Why time shift matters here: YAMNet cuts a waveform into 0.96 s patches every 0.48 s and zero-pads
a clip shorter than one patch at the end, so a 0.4 s word always sits at the very start of its only
patch and yields exactly one embedding. Placing the clip at several offsets inside the patch (or, for
a longer clip, moving YAMNet's patch grid by a fraction of a hop) gives several different, equally
valid embeddings of the same sound: more training frames, and a steadier average at inference.

Why level matters: YAMNet's log-mel features are not level-invariant (log(mel + 0.001)), and
recordings differ by 20 dB and more between microphones and speakers (FSDD: median RMS -44 dBFS
for one speaker, -21 dBFS for another). `normalize_rms` scales every clip to one level before
YAMNet, at training and at inference, so the head learns the sound and not the recorder.
"""

import numpy as np

from params import YAMNET

NOISE_COLORS = ("white", "pink", "brown")


# --- time-shifted views ------------------------------------------------------------------------

def shift_offsets(num_samples: int, views: int, window: int = YAMNET.patch_window_samples,
                  hop: int = YAMNET.patch_hop_samples) -> list[int]:
    """Leading-silence offsets (samples) of time-shifted copies of a clip of `num_samples`, so that
    the clip yields about `views` embeddings (at least one copy, the clip itself, first).

    A clip shorter than one patch (`window`, 15360 samples) gives one embedding per copy: `views`
    copies spread evenly over the patch, from its start (offset 0, what YAMNet sees anyway) to its
    end (offset window - n). A longer clip already gives one embedding per patch: it gets
    ceil(views / patches) copies, delayed by j * hop / copies, so YAMNet's patch grid (every `hop`
    = 7680 samples) lands at that many phases; a clip of `views` patches or more is embedded as is
    (its 60 ms-apart copies would cost 8x the training time for embeddings all but identical).
    """
    if views < 1:
        raise ValueError(f"views must be at least 1, not {views}")
    if views == 1:
        return [0]
    if num_samples < window:
        slack = window - num_samples
        return [round(j * slack / (views - 1)) for j in range(views)]
    copies = -(-views // (1 + (num_samples - window) // hop))
    return [round(j * hop / copies) for j in range(copies)]


def delay(waveform: np.ndarray, offset: int) -> np.ndarray:
    """(n,) -> (offset + n,): the clip preceded by `offset` samples of silence."""
    if offset < 0:
        raise ValueError(f"offset must be >= 0 samples, not {offset}")
    return np.concatenate([np.zeros(offset, np.float32), np.asarray(waveform, np.float32)])


def time_shifted_views(waveform: np.ndarray, views: int, window: int = YAMNET.patch_window_samples,
                       hop: int = YAMNET.patch_hop_samples) -> list[np.ndarray]:
    """Delayed copies of `waveform` giving about `views` embeddings (see `shift_offsets`); view 0 is the clip itself.

    Feed each view to YAMNet separately; a view of a short clip gives one embedding, a view of a
    clip of n >= window samples gives about n / hop embeddings.
    """
    return [delay(waveform, offset) for offset in shift_offsets(len(waveform), views, window, hop)]


def random_time_shift(waveform: np.ndarray, rng: np.random.Generator, window: int = YAMNET.patch_window_samples,
                      hop: int = YAMNET.patch_hop_samples) -> np.ndarray:
    """One delayed copy at a uniformly random offset: anywhere in the patch for a short clip,
    anywhere within one hop for a longer one. (n,) -> (offset + n,)."""
    n = len(waveform)
    high = window - n if n < window else hop - 1
    return delay(waveform, int(rng.integers(0, high + 1)))


# --- level and noise ---------------------------------------------------------------------------

def rms(waveform: np.ndarray) -> float:
    """Root mean square over the whole clip (linear, full scale = 1)."""
    if len(waveform) == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(waveform, dtype=np.float64))))


def apply_gain(waveform: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale by `gain_db` decibels and clip to [-1, 1] (loud gains clip, as a real recorder would)."""
    scaled = np.asarray(waveform, np.float64) * 10.0 ** (gain_db / 20.0)
    return np.clip(scaled, -1.0, 1.0).astype(np.float32)


def normalize_rms(waveform: np.ndarray, target_dbfs: float = -20.0, max_gain_db: float | None = None) -> np.ndarray:
    """Scale a clip to an RMS of `target_dbfs` dB full scale, then clip to [-1, 1]. (n,) -> (n,).

    Digital silence stays silent. `max_gain_db` caps the boost, so a near-silent window of a live
    stream is not amplified into loud noise (None: no cap, right for whole clips).
    """
    level = rms(waveform)
    if level == 0:
        return np.asarray(waveform, np.float32).copy()
    gain_db = target_dbfs - 20.0 * np.log10(level)
    if max_gain_db is not None:
        gain_db = min(gain_db, max_gain_db)
    return apply_gain(waveform, gain_db)


def colored_noise(num_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of unit RMS, shape (num_samples,) float32, with power spectrum ~ 1/f^a:
    white a = 0, pink a = 1, brown a = 2 (shaped in the frequency domain; DC removed)."""
    if color not in NOISE_COLORS:
        raise ValueError(f"unknown noise colour {color!r}; choose one of {', '.join(NOISE_COLORS)}")
    if num_samples <= 0:
        return np.zeros(0, np.float32)
    white = rng.standard_normal(num_samples)
    if color != "white":
        exponent = {"pink": 0.5, "brown": 1.0}[color]  # amplitude ~ f^-a/2
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(num_samples)
        scale = np.zeros_like(freqs)
        scale[1:] = freqs[1:] ** -exponent
        white = np.fft.irfft(spectrum * scale, n=num_samples)
    level = rms(white)
    return (white / level if level > 0 else white).astype(np.float32)


def fit_length(noise: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random `num_samples`-long excerpt of `noise`, tiling it first when it is too short."""
    noise = np.asarray(noise, np.float32)
    if len(noise) == 0:
        raise ValueError("background noise has no samples")
    if len(noise) < num_samples:
        noise = np.tile(noise, -(-num_samples // len(noise)))
    start = int(rng.integers(0, len(noise) - num_samples + 1))
    return noise[start:start + num_samples]


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator,
               reference_rms: float | None = None) -> np.ndarray:
    """signal (n,) + noise scaled so that 20 log10(rms(signal) / rms(noise)) = snr_db; clipped to [-1, 1].

    `noise` of any length is cut (or tiled) to n samples at a random start. `reference_rms`
    replaces rms(signal) when the signal holds padding that should not count (e.g. the clip's
    RMS before it was padded to a patch). A silent signal, or silent noise, is returned
    unchanged: there is no level to match.
    """
    signal = np.asarray(signal, np.float32)
    noise = fit_length(noise, len(signal), rng)
    signal_rms = rms(signal) if reference_rms is None else reference_rms
    noise_rms = rms(noise)
    if signal_rms == 0 or noise_rms == 0:
        return signal.copy()
    scale = signal_rms / (noise_rms * 10.0 ** (snr_db / 20.0))
    return np.clip(signal + scale * noise, -1.0, 1.0).astype(np.float32)


# --- pitch and tempo ---------------------------------------------------------------------------

def change_speed(waveform: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster: pitch and tempo change together (like Kaldi's speed perturbation).

    (n,) -> (about n / factor,), band-limited polyphase resampling. factor 1.1 = 10 % faster and
    1.65 semitones higher.
    """
    from fractions import Fraction

    from scipy.signal import resample_poly

    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, not {factor}")
    ratio = Fraction(factor).limit_denominator(100)
    out = resample_poly(np.asarray(waveform, np.float64), ratio.denominator, ratio.numerator)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def time_stretch(waveform: np.ndarray, rate: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Phase-vocoder stretch: `rate` > 1 is faster (shorter), pitch unchanged. (n,) -> (about n / rate,).

    n_fft and hop are in samples (32 ms and 8 ms at 16 kHz: fine enough for speech and short events).
    """
    from scipy.signal import istft, stft

    if rate <= 0:
        raise ValueError(f"stretch rate must be > 0, not {rate}")
    waveform = np.asarray(waveform, np.float64)
    n = len(waveform)
    if n < n_fft:
        waveform = np.pad(waveform, (0, n_fft - n))
    _f, _t, spec = stft(waveform, nperseg=n_fft, noverlap=n_fft - hop, boundary="zeros", padded=True)
    steps = np.arange(0, spec.shape[1] - 1, rate)
    expected_advance = 2 * np.pi * hop * np.arange(spec.shape[0]) / n_fft  # radians per hop, per bin
    phase = np.angle(spec[:, 0])
    out = np.empty((spec.shape[0], len(steps)), np.complex128)
    for i, step in enumerate(steps):
        left, frac = int(step), step - int(step)
        magnitude = (1 - frac) * np.abs(spec[:, left]) + frac * np.abs(spec[:, left + 1])
        out[:, i] = magnitude * np.exp(1j * phase)
        advance = np.angle(spec[:, left + 1]) - np.angle(spec[:, left]) - expected_advance
        advance -= 2 * np.pi * np.round(advance / (2 * np.pi))  # wrap to [-pi, pi]
        phase = phase + expected_advance + advance
    _t, stretched = istft(out, nperseg=n_fft, noverlap=n_fft - hop, boundary=True)
    length = max(1, round(n / rate))
    stretched = stretched[:length]
    if len(stretched) < length:
        stretched = np.pad(stretched, (0, length - len(stretched)))
    return np.clip(stretched, -1.0, 1.0).astype(np.float32)


def pitch_shift(waveform: np.ndarray, semitones: float) -> np.ndarray:
    """Shift pitch by `semitones`, keeping the duration: stretch in time, then resample back.
    (n,) -> (about n,)."""
    factor = 2.0 ** (semitones / 12.0)
    return change_speed(time_stretch(waveform, 1.0 / factor), factor)


# --- recipes -----------------------------------------------------------------------------------

def random_augment(waveform: np.ndarray, rng: np.random.Generator, *, gain_db=(-12.0, 6.0),
                   snr_db=(5.0, 30.0), noise_probability: float = 0.8, background=None,
                   shift: bool = True, speed=None, semitones=None,
                   window: int = YAMNET.patch_window_samples) -> np.ndarray:
    """One randomly augmented copy of `waveform`, (n,) -> (m,) float32, m >= window when noise is added.

    In this order, each optional: speed change by a factor uniform in `speed` (low, high); pitch
    shift by semitones uniform in `semitones`; gain uniform in `gain_db` (dB); a random time shift
    (`random_time_shift`); then, with probability `noise_probability`, noise at an SNR uniform in
    `snr_db` (dB, relative to the clip's own RMS) over the whole clip padded to one patch, as a
    room's background would be. The noise comes from `background` (waveforms, one picked at random)
    or is generated white/pink/brown. None skips a step.
    """
    out = np.asarray(waveform, np.float32)
    if speed is not None and speed[0] != speed[1]:
        out = change_speed(out, float(rng.uniform(*speed)))
    if semitones is not None and semitones[0] != semitones[1]:
        out = pitch_shift(out, float(rng.uniform(*semitones)))
    if gain_db is not None:
        out = apply_gain(out, float(rng.uniform(*gain_db)))
    if shift:
        out = random_time_shift(out, rng, window=window)
    if snr_db is not None and rng.random() < noise_probability:
        reference = rms(out)  # silence added by the shift does not count towards the level
        padded = np.pad(out, (0, max(0, window - len(out))))
        if background:
            noise = background[int(rng.integers(len(background)))]
        else:
            noise = colored_noise(len(padded), NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))], rng)
        out = mix_at_snr(padded, noise, float(rng.uniform(*snr_db)), rng, reference_rms=reference)
    return out
