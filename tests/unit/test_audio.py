"""Audio input: the log-mel spectrogram against an independent numpy STFT, the filterbank, resampling, bad input."""
import wave

import numpy as np
import pytest

from whisper.audio import (
    N_FFT, HOP_LENGTH, N_SAMPLES, SAMPLE_RATE_HZ, AudioError, StreamingResampler, load_audio,
    log_mel_spectrogram, log_mel_window, mel_filters, pad_or_trim, resample,
)  # fmt: skip


def numpy_log_mel(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Whisper's features from first principles: centred, reflect-padded, periodic-Hann STFT."""
    padded = np.pad(audio.astype(np.float64), N_FFT // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    n_frames = 1 + (len(padded) - N_FFT) // HOP_LENGTH
    frames = np.stack([padded[i * HOP_LENGTH : i * HOP_LENGTH + N_FFT] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, 201)
    mel = mel_filters("cpu", n_mels).numpy().astype(np.float64) @ power[:-1].T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    return (np.maximum(log_spec, log_spec.max() - 8.0) + 4.0) / 4.0


def sine(freq_hz: float, rate_hz: int, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq_hz * np.arange(int(rate_hz * seconds)) / rate_hz)).astype(np.float32)


def write_wav(path, samples: np.ndarray, rate_hz: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes((samples * 32767).astype("<i2").tobytes())


def test_mel_shape_and_values_match_numpy_stft():
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(SAMPLE_RATE_HZ) + sine(300, SAMPLE_RATE_HZ)).astype(np.float32)
    mel = log_mel_spectrogram(audio).numpy()
    assert mel.shape == (80, 100)
    np.testing.assert_allclose(mel, numpy_log_mel(audio), atol=2e-4)


def test_mel_of_real_prompt_matches_numpy_stft():
    audio = load_audio("/usr/share/asterisk/sounds/en/agent-pass.wav")
    np.testing.assert_allclose(log_mel_spectrogram(audio, 128).numpy(), numpy_log_mel(audio, 128), atol=2e-4)


@pytest.mark.parametrize("seconds", [0.0, 0.02, 2.37, 29.98, 30.0, 31.5])
@pytest.mark.parametrize("n_mels", [80, 128])
def test_a_window_computed_over_its_audio_only_equals_the_whole_padded_window(seconds, n_mels):
    audio = load_audio("/usr/share/asterisk/sounds/en/agent-pass.wav")
    audio = np.resize(audio, int(seconds * SAMPLE_RATE_HZ))  # the prompt repeated to the length
    whole = log_mel_spectrogram(pad_or_trim(audio, N_SAMPLES), n_mels)
    window = log_mel_window(audio, n_mels)
    assert window.shape == whole.shape == (n_mels, 3000)
    np.testing.assert_allclose(window.numpy(), whole.numpy(), atol=1e-5)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filterbank_properties(n_mels):
    filters = mel_filters("cpu", n_mels).numpy()
    assert filters.shape == (n_mels, N_FFT // 2 + 1)
    assert (filters >= 0).all()
    peaks = filters.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all(), "filter centres rise with the mel index"
    bin_hz = SAMPLE_RATE_HZ / N_FFT
    wide = (filters > 0).sum(axis=1) >= 6  # enough bins to integrate the triangle
    areas = filters[wide].sum(axis=1) * bin_hz
    np.testing.assert_allclose(areas, 1.0, atol=0.1)  # Slaney normalisation: unit area in Hz
    for row in filters:  # each filter is one contiguous band
        nonzero = np.flatnonzero(row)
        assert nonzero[-1] - nonzero[0] + 1 == len(nonzero)


@pytest.mark.parametrize("rate_hz", [8000, 12000, 22050, 24000, 32000, 44100, 48000])
def test_resampling_keeps_frequency(rate_hz):
    freq_hz = 1000.0 if rate_hz > 8000 else 3000.0
    out = resample(sine(freq_hz, rate_hz, 2.0), rate_hz, SAMPLE_RATE_HZ)
    assert abs(len(out) - 2 * SAMPLE_RATE_HZ) <= 1
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = spectrum.argmax() * SAMPLE_RATE_HZ / len(out)
    assert abs(peak_hz - freq_hz) < 2.0
    assert 0.45 < np.abs(out[1000:-1000]).max() < 0.55  # amplitude kept


@pytest.mark.parametrize("from_hz, to_hz", [(8000, 16000), (44100, 16000), (22050, 16000), (16000, 11025)])
def test_both_ways_of_resampling_give_the_same_samples(from_hz, to_hz):
    """A convolution per phase (few phases) and gathered windows (many) compute the same sums."""
    import torch

    from whisper.audio import _reduced_ratio, _resample_by_block, _resample_by_phase, _sinc_kernels

    up, down = _reduced_ratio(to_hz, from_hz)
    kernels, half = _sinc_kernels(up, down)
    samples = np.random.default_rng(3).normal(size=from_hz // 2).astype(np.float32)
    padded = torch.from_numpy(np.pad(samples, (half, half)))
    n_out = (samples.size * up + down - 1) // down
    by_phase = _resample_by_phase(padded, kernels, half, up, down, n_out)
    np.testing.assert_allclose(by_phase, _resample_by_block(padded, kernels, half, up, down, n_out), atol=1e-5)
    np.testing.assert_allclose(resample(samples, from_hz, to_hz), by_phase, atol=1e-5)


@pytest.mark.parametrize("rate_hz", [8000, 12000, 22050, 44100, 48000])
def test_streaming_resampler_matches_offline_resampling(rate_hz):
    """Fed in pieces of any size (a 20 ms frame, a burst after a stall), as a call's audio arrives."""
    rng = np.random.default_rng(rate_hz)
    audio = (0.3 * rng.standard_normal(rate_hz * 2)).astype(np.float32)
    resampler, pieces, start = StreamingResampler(rate_hz), [], 0
    while start < len(audio):
        size = int(rng.integers(1, rate_hz // 10))
        pieces.append(resampler.process(audio[start : start + size]))
        start += size
    pieces.append(resampler.flush())
    np.testing.assert_allclose(np.concatenate(pieces), resample(audio, rate_hz, SAMPLE_RATE_HZ), atol=1e-5)


def test_downsampling_removes_content_above_nyquist():
    out = resample(sine(12000, 48000) + sine(1000, 48000), 48000, SAMPLE_RATE_HZ)
    spectrum = np.abs(np.fft.rfft(out))
    assert spectrum[1000] > 100 * spectrum[4000]  # 12 kHz must not alias to 4 kHz


def test_wav_at_8khz_loads_resampled(tmp_path):
    write_wav(tmp_path / "tone.wav", sine(440, 8000), 8000)
    assert len(load_audio(tmp_path / "tone.wav")) == SAMPLE_RATE_HZ


def test_corrupt_wav_is_refused(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioError, match="not a readable audio file"):
        load_audio(path)


def test_empty_wav_is_refused(tmp_path):
    write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(AudioError, match="no audio"):
        load_audio(tmp_path / "empty.wav")


def test_empty_array_is_refused():
    with pytest.raises(AudioError):
        log_mel_spectrogram(np.zeros(0, np.float32))
