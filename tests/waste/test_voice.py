"""Voice prompts are real speech: valid WAV, audible, voiced, of plausible length."""

from __future__ import annotations

import io
import json
import re
import shutil
import string
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from linli.waste import voice
from linli.waste.cli import app

BACKENDS = [
    "wheel",
    pytest.param(
        "cli",
        marks=pytest.mark.skipif(
            shutil.which("espeak-ng") is None, reason="Debian espeak-ng package not installed"
        ),
    ),
]

SAMPLES = {
    "en": voice.render_prompt("outside_hours", "en", next_open=voice.spoken_time(18, 30, "en")),
    "zh": voice.render_prompt("outside_hours", "zh", next_open=voice.spoken_time(18, 30, "zh")),
}


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", data[:16]
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 1
        assert w.getsampwidth() == 2
        assert 8000 <= w.getframerate() <= 48000
        frames = w.readframes(w.getnframes())
        rate = w.getframerate()
    # header sizes agree with the payload (no streaming placeholder lengths)
    assert int.from_bytes(data[4:8], "little") == len(data) - 8
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
    assert len(samples) > 0
    return samples, rate


def speech_stats(samples: np.ndarray, rate: int) -> dict[str, float]:
    """Frame energies, voiced runs and periodicity (pitch 70-400 Hz) of a signal."""
    frame = int(0.025 * rate)
    n = len(samples) // frame
    frames = samples[: n * frame].reshape(n, frame)
    rms = np.sqrt((frames**2).mean(axis=1))
    active = rms > max(0.1 * rms.max(), 200.0)
    runs = int(np.count_nonzero(np.diff(active.astype(int)) == 1) + int(active[0]))
    lo, hi = int(rate / 400), int(rate / 70)
    periodic = []
    for i in np.flatnonzero(active):
        seg = samples[max(0, i * frame - frame) : (i + 2) * frame]
        seg = seg - seg.mean()
        ac = np.correlate(seg, seg, mode="full")[len(seg) - 1 :]
        if ac[0] <= 0 or len(ac) <= hi:
            continue
        periodic.append(ac[lo:hi].max() / ac[0])
    return {
        "rms": float(np.sqrt((samples**2).mean())),
        "duration": len(samples) / rate,
        "active_fraction": float(active.mean()),
        "runs": runs,
        "periodic_fraction": float(np.mean(np.array(periodic) > 0.4)) if periodic else 0.0,
    }


def plausible_duration(text: str, lang: str) -> tuple[float, float]:
    if lang == "zh":
        units = len(re.findall(r"[\u4e00-\u9fff]", text)) + len(re.findall(r"\d+", text))
        return 0.12 * units, 0.6 * units + 1.0
    words = len(text.split())
    return 0.15 * words, 0.9 * words + 1.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_synthesised_prompt_is_real_speech(backend: str, lang: str) -> None:
    text = SAMPLES[lang]
    data = voice.synthesize(text, lang, backend=backend)
    samples, rate = read_wav(data)
    stats = speech_stats(samples, rate)
    assert stats["rms"] > 500, stats  # int16 scale: clearly audible, not silence
    lo, hi = plausible_duration(text, lang)
    assert lo <= stats["duration"] <= hi, (stats, lo, hi)
    assert 0.3 <= stats["active_fraction"] <= 0.98, stats  # speech with pauses
    assert stats["runs"] >= 4, stats  # several separate voiced stretches (words)
    assert stats["periodic_fraction"] >= 0.5, stats  # voiced: pitch-periodic frames


def test_both_languages_differ_and_length_follows_text() -> None:
    zh_short = voice.synthesize("请破袋投放。", "zh")
    zh_long = voice.synthesize(voice.render_prompt("break_bag", "zh") * 2, "zh")
    en = voice.synthesize("Please break the bag.", "en")
    assert zh_short != en
    d_short = len(read_wav(zh_short)[0])
    d_long = len(read_wav(zh_long)[0])
    assert d_long > 2.5 * d_short


def test_cache_returns_same_bytes_and_writes_content_addressed_files(tmp_path: Path) -> None:
    voice.clear_memory_cache()
    text = voice.render_prompt("thank_you", "en")
    first = voice.synthesize(text, "en", cache_dir=tmp_path)
    key = voice.cache_key(text, "en")
    stored = tmp_path / f"{key}.wav"
    assert stored.read_bytes() == first
    voice.clear_memory_cache()
    again = voice.synthesize("  " + text + " ", "en", cache_dir=tmp_path)  # same content
    assert again == first
    assert voice.cache_key(text, "zh") != key
    assert voice.cache_key(text, "en", rate=120) != key
    assert len(list(tmp_path.glob("*.wav"))) == 1


def test_all_prompts_render_in_both_languages() -> None:
    params = {
        "item": {"en": "banana peel", "zh": "香蕉皮"},
        "category": voice.CATEGORY["kitchen"],
        "bin": voice.BIN["kitchen"],
        "next_open": {"en": "6 p m", "zh": "晚上6点"},
    }
    for key, texts in voice.PROMPTS.items():
        assert set(texts) == set(voice.LANGS), key
        names = {
            lang: {f for _, f, _, _ in string.Formatter().parse(t) if f}
            for lang, t in texts.items()
        }
        assert names["en"] == names["zh"], key
        for lang in voice.LANGS:
            text = voice.render_prompt(key, lang, **params)
            assert "{" not in text
            if lang == "zh":
                assert re.search(r"[\u4e00-\u9fff]", text)
    spoken = voice.category_prompt("kitchen", "zh", item="香蕉皮")
    assert spoken == "香蕉皮属于湿垃圾，请投入棕色湿垃圾桶。"
    assert "brown" in voice.category_prompt("kitchen", "en")


def test_spoken_time() -> None:
    assert voice.spoken_time(18, 0, "zh") == "晚上6点"
    assert voice.spoken_time(7, 30, "zh") == "早上7点30分"
    assert voice.spoken_time(18, 30, "en") == "6:30 p m"
    assert voice.spoken_time(0, 0, "en") == "12 a m"


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: voice.synthesize("", "zh"), "empty_text"),
        (lambda: voice.synthesize("  \n ", "en"), "empty_text"),
        (lambda: voice.synthesize("长" * 10_000, "zh"), "text_too_long"),
        (lambda: voice.synthesize("bonjour", "fr"), "unsupported_lang"),
        (lambda: voice.render_prompt("no_such_prompt", "en"), "unknown_prompt"),
        (lambda: voice.render_prompt("outside_hours", "en"), "missing_param"),
    ],
)
def test_bad_requests_raise_value_errors_with_codes(call: object, code: str) -> None:
    with pytest.raises(voice.VoiceInputError) as err:
        call()  # type: ignore[operator]
    assert isinstance(err.value, ValueError)
    assert err.value.code == code
    assert code in voice.REASONS


def test_wheel_engine_works_alone() -> None:
    engine = voice.get_engine("wheel")
    assert engine.name == "espeakng-loader"
    assert engine.voice_for("zh") in voice.VOICES["zh"]
    assert engine.voice_for("en") in voice.VOICES["en"]
    with pytest.raises(voice.VoiceError) as err:
        voice.get_engine("no-such-backend")
    assert err.value.code == "no_engine"


def test_cli_say_writes_both_languages(tmp_path: Path) -> None:
    out = tmp_path / "prompt.wav"
    result = CliRunner().invoke(
        app, ["say", "outside_hours", "-p", "next_open=18:00", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [r["lang"] for r in records] == ["zh", "en"]
    for r in records:
        samples, rate = read_wav(Path(r["file"]).read_bytes())
        assert speech_stats(samples, rate)["rms"] > 500
        assert r["seconds"] > 1.0
    bad = CliRunner().invoke(app, ["say", "outside_hours", "--lang", "en"])
    assert bad.exit_code == 1
    assert json.loads(bad.output)["error"] == "missing_param"


def test_cli_prompts_and_engine() -> None:
    result = CliRunner().invoke(app, ["prompts"])
    keys = [json.loads(line)["key"] for line in result.output.strip().splitlines()]
    assert "break_bag" in keys and "outside_hours" in keys
    result = CliRunner().invoke(app, ["engine"])
    assert result.exit_code == 0
    assert json.loads(result.output)["engine"] in ("espeakng-loader", "espeak-ng-cli")


def test_speech_checks_reject_silence_noise_and_tone() -> None:
    """The checks above can fail: signals that are not speech do not pass them."""
    rate = 22050
    t = np.arange(3 * rate) / rate
    signals = {
        "silence": np.zeros(3 * rate),
        "noise": np.random.default_rng(0).normal(0, 3000, 3 * rate),
        "tone": 3000 * np.sin(2 * np.pi * 200 * t),
    }
    for name, sig in signals.items():
        stats = speech_stats(sig, rate)
        is_speech = (
            stats["rms"] > 500
            and 0.3 <= stats["active_fraction"] <= 0.98
            and stats["runs"] >= 4
            and stats["periodic_fraction"] >= 0.5
        )
        assert not is_speech, (name, stats)
