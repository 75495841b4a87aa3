"""Audio: WAV reading, the mel filterbank, log-mel shape and pitch, missing / corrupt clips, alignment."""

from __future__ import annotations

import io
import logging

import numpy as np
from scipy.io import wavfile

from fusionrec.encoders.audio import (
    LogMelCNNAudioEncoder,
    LogMelConfig,
    load_audio,
    log_mel,
    mel_filterbank,
    read_wav,
)
from fusionrec.encoders.media import AlignConfig

from .media_files import write_corrupt, write_tone


def wav_bytes(rate: int, data: np.ndarray) -> bytes:
    buf = io.BytesIO()
    wavfile.write(buf, rate, data)
    return buf.getvalue()


def test_read_wav_handles_int_float_uint8_and_stereo() -> None:
    x = 0.5 * np.sin(np.linspace(0, 20, 400))
    for data in ((x * 32767).astype(np.int16), x.astype(np.float32), (x * 2**31 * 0.999).astype(np.int32),
                 np.round(x * 127 + 128).astype(np.uint8), np.stack([x, x], 1).astype(np.float32)):
        y, sr = read_wav(wav_bytes(16000, data))
        assert sr == 16000 and y.shape == (400,) and y.dtype == np.float64
        np.testing.assert_allclose(y, x, atol=0.01)


def test_mel_filterbank_shape_and_no_empty_band() -> None:
    fb = mel_filterbank(8000, 512, 64)
    assert fb.shape == (64, 257) and fb.max() <= 1.0
    assert (fb.max(axis=1) > 0).all()
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # bands rise in frequency
    # bands are fixed in Hz: above an 8 kHz clip's Nyquist frequency (4 kHz) they stay empty
    fb8 = mel_filterbank(8000, 512, 64, fmax=8000.0)
    assert fb8[:40].max(axis=1).min() > 0 and (fb8[-10:] == 0).all()


def test_log_mel_has_a_fixed_shape_and_tones_of_different_pitch_peak_apart() -> None:
    cfg = LogMelConfig(n_mels=40, n_frames=50)
    sr = 16000
    t = np.arange(sr) / sr  # 1 s = 100 frames: centre-cropped to 50
    low, high = (log_mel(np.sin(2 * np.pi * f * t), sr, cfg) for f in (440.0, 1760.0))
    short = log_mel(np.sin(2 * np.pi * 440.0 * t[:1600]), sr, cfg)  # 0.1 s: padded
    assert low.shape == high.shape == short.shape == (40, 50)
    p_low, p_high = low.mean(axis=1).argmax(), high.mean(axis=1).argmax()
    assert p_high > p_low + 5
    assert short.mean(axis=1).argmax() == p_low
    assert np.all(short[:, -5:] == short[0, -1])  # the padding is the log floor
    # the same tone at another sample rate peaks in the same band
    t8 = np.arange(8000) / 8000
    assert log_mel(np.sin(2 * np.pi * 440.0 * t8), 8000, cfg).mean(axis=1).argmax() == p_low


def test_missing_and_corrupt_clips_are_absent_and_cached_ones_not_decoded_again(tmp_path, caplog) -> None:
    a = write_tone(tmp_path / "a.wav", 300)
    b = write_tone(tmp_path / "b.wav", 900, dtype="float32")
    bad = write_corrupt(tmp_path / "bad.wav")
    paths = [str(a), str(bad), str(tmp_path / "gone.wav"), None, str(b)]
    cfg = LogMelConfig(n_mels=32, n_frames=32)
    with caplog.at_level(logging.WARNING, logger="fusionrec.encoders.media"):
        batch = load_audio(paths, config=cfg, cache_dir=tmp_path / "cache")
    assert batch.present.tolist() == [True, False, False, False, True]
    assert batch.inputs.shape == (2, 1, 32, 32)
    assert "1 missing and 1 corrupt" in caplog.text
    again = load_audio(paths, config=cfg, cache_dir=tmp_path / "cache")
    assert again.decoded == 0 and again.cached == 3 and again.present.tolist() == batch.present.tolist()
    np.testing.assert_array_equal(again.inputs, batch.inputs)


def test_audio_cnn_aligned_to_pitch_behaviour(tmp_path) -> None:
    rng = np.random.default_rng(0)
    cfg = LogMelConfig(n_mels=32, n_frames=24)
    pitch = rng.random(60)
    sr = 8000
    t = np.arange(2000) / sr
    clips = np.stack([log_mel(np.sin(2 * np.pi * (200 + 1500 * p) * t), sr, cfg)[None] for p in pitch])
    beh = np.stack([np.cos(np.pi * pitch), np.sin(np.pi * pitch)], 1).astype(np.float32)  # pitch on a half circle
    enc = LogMelCNNAudioEncoder(logmel=cfg, config=AlignConfig(epochs=40, batch_size=16, width=16), seed=0)
    enc.fit(clips[:48], beh[:48])
    v = enc.encode(clips[48:])
    target = beh[48:] / np.linalg.norm(beh[48:], axis=1, keepdims=True) - enc.target_mean_  # centred direction
    target /= np.linalg.norm(target, axis=1, keepdims=True)
    cos = (v * target).sum(1).mean()
    shuffled = (v * target[::-1]).sum(1).mean()
    # seeds 0-9 at 1 thread and 0-4 at 2 threads: cosine 0.985-0.999, reversed order 0.18-0.26
    assert cos > 0.8 and cos > shuffled + 0.3, (cos, shuffled, enc.report_)
    arrays, meta = enc.to_state()
    np.testing.assert_array_equal(LogMelCNNAudioEncoder.from_state(arrays, meta).encode(clips[48:]), v)
