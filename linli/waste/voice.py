"""Spoken prompts for waste-delivery terminals (Mandarin and English), made with espeak-ng.

Two ways to reach espeak-ng, tried in this order (``LINLI_TTS_BACKEND=wheel|cli`` forces one):

* ``wheel``: the ``espeakng-loader`` wheel, a Python dependency of Linli, bundles
  ``libespeak-ng`` and its voice data; we call the library through ctypes (synchronous
  mode, samples collected by a callback). Works with nothing else installed.
* ``cli``: the ``espeak-ng`` command of the Debian package (``apt-get install espeak-ng``).

``synthesize(text, lang)`` returns a complete WAV file (mono, 16-bit PCM) as bytes. Results
are cached by a content hash of (backend, voice, rate, text): in memory, and also on disk
when ``LINLI_TTS_CACHE`` names a folder (files ``<sha256>.wav``).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import shutil
import string
import subprocess
import tempfile
import threading
import wave
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

LANGS: tuple[str, ...] = ("zh", "en")
# espeak-ng voice names per language, first that loads wins ("zh" is the pre-1.50 name).
VOICES: dict[str, tuple[str, ...]] = {"zh": ("cmn", "zh"), "en": ("en-us", "en")}
# Words per minute: a little slower than espeak-ng's 175 so that prompts at a noisy bin
# stay clear; Mandarin syllables are denser, so slower still.
DEFAULT_RATE: dict[str, int] = {"zh": 150, "en": 160}
MAX_TEXT_CHARS = 500
MEMORY_CACHE_ITEMS = 256

REASONS: dict[str, str] = {
    "empty_text": "Nothing to say",
    "text_too_long": "The text is too long to speak (at most %(max)s characters)",
    "unsupported_lang": "Unsupported language (use zh or en)",
    "unknown_prompt": "Unknown prompt",
    "missing_param": "A value for the prompt is missing",
    "no_engine": "No speech engine: neither the espeakng-loader wheel nor the espeak-ng "
    "command works",
    "engine_failed": "The speech engine failed",
    "no_player": "No audio player found (aplay, paplay, pw-play, ffplay or play)",
}


class VoiceError(RuntimeError):
    """Speech could not be produced; ``code`` is a stable machine code (see ``REASONS``)."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        message = REASONS.get(code, code) % {"max": MAX_TEXT_CHARS}
        super().__init__(f"{message}: {detail}" if detail else message)


class VoiceInputError(VoiceError, ValueError):
    """The request is invalid (empty or too long text, unknown language or prompt)."""


# ---------------------------------------------------------------------------------------
# Prompt templates
# ---------------------------------------------------------------------------------------

BIN: dict[str, dict[str, str]] = {
    "recyclable": {"en": "the blue recyclables bin", "zh": "蓝色可回收物桶"},
    "hazardous": {"en": "the red hazardous waste bin", "zh": "红色有害垃圾桶"},
    "kitchen": {"en": "the brown kitchen waste bin", "zh": "棕色湿垃圾桶"},
    "residual": {"en": "the black residual waste bin", "zh": "黑色干垃圾桶"},
    "bulky": {"en": "the bulky waste area", "zh": "大件垃圾堆放点"},
}
CATEGORY: dict[str, dict[str, str]] = {
    "recyclable": {"en": "recyclable", "zh": "可回收物"},
    "hazardous": {"en": "hazardous waste", "zh": "有害垃圾"},
    "kitchen": {"en": "kitchen waste", "zh": "湿垃圾"},
    "residual": {"en": "residual waste", "zh": "干垃圾"},
    "bulky": {"en": "bulky waste", "zh": "大件垃圾"},
}

# key -> {lang: template}; placeholders in str.format style. A value passed to
# ``render_prompt`` may be a plain string or a {lang: string} mapping.
PROMPTS: dict[str, dict[str, str]] = {
    "welcome": {
        "en": "Welcome. Please sort your waste.",
        "zh": "您好，请分类投放垃圾。",
    },
    "which_bin": {
        "en": "{item} is {category}. Please put it in {bin}.",
        "zh": "{item}属于{category}，请投入{bin}。",
    },
    "bin.recyclable": {
        "en": "Recyclables go in the blue bin.",
        "zh": "可回收物请投入蓝色桶。",
    },
    "bin.hazardous": {
        "en": "Hazardous waste goes in the red bin. Please keep it intact.",
        "zh": "有害垃圾请投入红色桶，请保持物品完整。",
    },
    "bin.kitchen": {
        "en": "Kitchen waste goes in the brown bin.",
        "zh": "湿垃圾请投入棕色桶。",
    },
    "bin.residual": {
        "en": "Residual waste goes in the black bin.",
        "zh": "干垃圾请投入黑色桶。",
    },
    "bin.bulky": {
        "en": "Bulky waste does not go in the bins. Please book a collection with the "
        "property office.",
        "zh": "大件垃圾请勿投入垃圾桶，请联系物业预约清运。",
    },
    "break_bag": {
        "en": "Please break the bag for kitchen waste, and put the empty bag in the "
        "residual waste bin.",
        "zh": "湿垃圾请破袋投放，垃圾袋请投入干垃圾桶。",
    },
    "outside_hours": {
        "en": "Outside delivery hours. The next window opens at {next_open}.",
        "zh": "现在不是投放时间，下次投放时间为{next_open}。",
    },
    "bin_full": {
        "en": "This bin is full. Please use another collection point. Staff have been told.",
        "zh": "此垃圾桶已满，请到其他投放点投放，已通知工作人员。",
    },
    "wrong_bin": {
        "en": "This looks like {category}. Please put it in {bin}.",
        "zh": "这看起来是{category}，请投入{bin}。",
    },
    "ask_staff": {
        "en": "Not sure where it goes? Please ask the staff at the sorting point.",
        "zh": "不确定怎么分类？请咨询现场值守人员。",
    },
    "thank_you": {
        "en": "Thank you for sorting your waste.",
        "zh": "感谢您参与垃圾分类。",
    },
}


def _check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise VoiceInputError("unsupported_lang", repr(lang))
    return lang


def render_prompt(key: str, lang: str, **params: str | Mapping[str, str]) -> str:
    """Fill a prompt template in one language."""
    _check_lang(lang)
    if key not in PROMPTS:
        raise VoiceInputError("unknown_prompt", key)
    template = PROMPTS[key][lang]
    needed = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    values: dict[str, str] = {}
    for name in needed:
        if name not in params:
            raise VoiceInputError("missing_param", f"{key}: {name}")
        value = params[name]
        values[name] = value if isinstance(value, str) else value[lang]
    return template.format(**values)


def category_prompt(category: str, lang: str, item: str | Mapping[str, str] | None = None) -> str:
    """ "X is kitchen waste, please put it in the brown bin" (or the bin sentence alone)."""
    _check_lang(lang)
    if category not in BIN:
        raise VoiceInputError("unknown_prompt", f"category {category!r}")
    if item is None:
        return render_prompt(f"bin.{category}", lang)
    return render_prompt(
        "which_bin", lang, item=item, category=CATEGORY[category], bin=BIN[category]
    )


def spoken_time(hour: int, minute: int, lang: str) -> str:
    """A clock time the way it is said: "6:30 pm" / "晚上6点30分"."""
    _check_lang(lang)
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise VoiceInputError("missing_param", f"time {hour}:{minute}")
    if lang == "en":
        h12 = hour % 12 or 12
        suffix = "a m" if hour < 12 else "p m"
        return f"{h12} {suffix}" if minute == 0 else f"{h12}:{minute:02d} {suffix}"
    part = (
        "凌晨"
        if hour < 6
        else "早上"
        if hour < 9
        else "上午"
        if hour < 12
        else "中午"
        if hour < 13
        else "下午"
        if hour < 18
        else "晚上"
    )
    h12 = hour if hour <= 12 else hour - 12
    return f"{part}{h12}点" + (f"{minute}分" if minute else "")


# ---------------------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audio:
    samples: bytes  # mono 16-bit little-endian PCM
    sample_rate: int

    def to_wav(self) -> bytes:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(self.samples)
        return buf.getvalue()


class Engine(Protocol):
    name: str

    def voice_for(self, lang: str) -> str: ...

    def speak(self, text: str, voice: str, rate: int) -> Audio: ...


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_POS_CHARACTER = 1


class WheelEngine:
    """libespeak-ng and voices from the ``espeakng-loader`` wheel, through ctypes.

    The library keeps global state, so one instance per process and a lock around calls.
    """

    name = "espeakng-loader"

    def __init__(self) -> None:
        import espeakng_loader

        data_path = espeakng_loader.get_data_path()
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _ESPEAK_INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise VoiceError("no_engine", f"espeak_Initialize returned {rate}")
        self.sample_rate = rate
        self._lib = lib
        self._chunks: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: no GC
        lib.espeak_SetSynthCallback(self._callback)
        self._voices: dict[str, str] = {}

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], n: int, events: int | None) -> int:
        if n > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, n * 2))
        return 0  # 0 = continue

    def voice_for(self, lang: str) -> str:
        if lang not in self._voices:
            for name in VOICES[lang]:
                if self._lib.espeak_SetVoiceByName(name.encode()) == 0:
                    self._voices[lang] = name
                    break
            else:
                raise VoiceError("no_engine", f"no espeak-ng voice for {lang}")
        return self._voices[lang]

    def speak(self, text: str, voice: str, rate: int) -> Audio:
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise VoiceError("engine_failed", f"voice {voice}")
        self._lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
        err = self._lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        self._lib.espeak_Synchronize()
        if err != 0:
            raise VoiceError("engine_failed", f"espeak_Synth returned {err}")
        samples, self._chunks = b"".join(self._chunks), []
        return Audio(samples, self.sample_rate)


class CliEngine:
    """The ``espeak-ng`` command (Debian package ``espeak-ng``)."""

    name = "espeak-ng-cli"

    def __init__(self, command: str | None = None) -> None:
        found = command or shutil.which("espeak-ng")
        if not found:
            raise VoiceError("no_engine", "espeak-ng command not found")
        self.command = found
        self._voices: dict[str, str] = {}

    def voice_for(self, lang: str) -> str:
        if lang not in self._voices:
            for name in VOICES[lang]:
                try:
                    self.speak("a", name, DEFAULT_RATE[lang])
                except VoiceError:
                    continue
                self._voices[lang] = name
                break
            else:
                raise VoiceError("no_engine", f"no espeak-ng voice for {lang}")
        return self._voices[lang]

    def speak(self, text: str, voice: str, rate: int) -> Audio:
        with tempfile.TemporaryDirectory(prefix="linli-tts-") as tmp:
            out = Path(tmp) / "speech.wav"
            try:
                proc = subprocess.run(
                    [self.command, "-v", voice, "-s", str(rate), "-b", "1", "-w", str(out)],
                    input=text.encode("utf-8"),
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise VoiceError("engine_failed", str(exc)) from exc
            stderr = proc.stderr.decode("utf-8", "replace").strip()
            if proc.returncode != 0 or not out.is_file() or "not found" in stderr.lower():
                raise VoiceError("engine_failed", stderr or f"exit {proc.returncode}")
            with wave.open(str(out), "rb") as w:
                if w.getnchannels() != 1 or w.getsampwidth() != 2:
                    raise VoiceError("engine_failed", "unexpected WAV format")
                return Audio(w.readframes(w.getnframes()), w.getframerate())


_ENGINE_LOCK = threading.RLock()
_ENGINES: dict[str, Engine] = {}


def get_engine(prefer: str | None = None) -> Engine:
    """The speech engine: ``wheel`` first, then ``cli`` (or the one named / in
    ``LINLI_TTS_BACKEND``)."""
    prefer = prefer or os.environ.get("LINLI_TTS_BACKEND") or None
    order = [prefer] if prefer else ["wheel", "cli"]
    errors: list[str] = []
    with _ENGINE_LOCK:
        for name in order:
            if name in _ENGINES:
                return _ENGINES[name]
            try:
                engine: Engine
                if name == "wheel":
                    engine = WheelEngine()
                elif name == "cli":
                    engine = CliEngine()
                else:
                    raise VoiceError("no_engine", f"unknown backend {name!r}")
            except (ImportError, OSError, VoiceError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            _ENGINES[name] = engine
            return engine
    raise VoiceError("no_engine", "; ".join(errors))


def engine_name(prefer: str | None = None) -> str:
    return get_engine(prefer).name


# ---------------------------------------------------------------------------------------
# Synthesis with a content-hash cache
# ---------------------------------------------------------------------------------------

_MEMORY: OrderedDict[str, bytes] = OrderedDict()


def cache_key(text: str, lang: str, *, rate: int | None = None, backend: str | None = None) -> str:
    """The content hash that names a synthesised prompt."""
    engine = get_engine(backend)
    voice = engine.voice_for(_check_lang(lang))
    rate = rate or DEFAULT_RATE[lang]
    payload = "\x1f".join([engine.name, voice, str(rate), _clean(text)])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _clean(text: str) -> str:
    if not isinstance(text, str):
        raise VoiceInputError("empty_text", type(text).__name__)
    if len(text) > MAX_TEXT_CHARS:
        raise VoiceInputError("text_too_long", f"{len(text)} characters")
    cleaned = " ".join(text.split())
    if not cleaned:
        raise VoiceInputError("empty_text")
    return cleaned


def _cache_dir(cache_dir: Path | str | None) -> Path | None:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("LINLI_TTS_CACHE")
    return Path(env) if env else None


def synthesize(
    text: str,
    lang: str,
    *,
    rate: int | None = None,
    backend: str | None = None,
    cache_dir: Path | str | None = None,
) -> bytes:
    """Speak ``text`` in ``lang`` ("zh" or "en"); returns WAV bytes (mono, 16-bit PCM)."""
    _check_lang(lang)
    cleaned = _clean(text)
    rate = rate or DEFAULT_RATE[lang]
    with _ENGINE_LOCK:
        engine = get_engine(backend)
        voice = engine.voice_for(lang)
        key = cache_key(cleaned, lang, rate=rate, backend=backend)
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
        folder = _cache_dir(cache_dir)
        path = folder / f"{key}.wav" if folder is not None else None
        if path is not None and path.is_file():
            wav = path.read_bytes()
        else:
            audio = engine.speak(cleaned, voice, rate)
            if not audio.samples:
                raise VoiceError("engine_failed", "no audio produced")
            wav = audio.to_wav()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(wav)
                tmp.replace(path)
        _MEMORY[key] = wav
        while len(_MEMORY) > MEMORY_CACHE_ITEMS:
            _MEMORY.popitem(last=False)
        return wav


def speak_prompt(key: str, lang: str, **params: str | Mapping[str, str]) -> bytes:
    """Render a prompt template and synthesise it."""
    return synthesize(render_prompt(key, lang, **params), lang)


def clear_memory_cache() -> None:
    with _ENGINE_LOCK:
        _MEMORY.clear()


def play(wav: bytes) -> str:
    """Play WAV bytes on this machine's sound output; returns the player used."""
    for player, args in (
        ("aplay", ["-q"]),
        ("paplay", []),
        ("pw-play", []),
        ("ffplay", ["-nodisp", "-autoexit", "-loglevel", "quiet"]),
        ("play", ["-q"]),
    ):
        exe = shutil.which(player)
        if exe is None:
            continue
        with tempfile.NamedTemporaryFile(suffix=".wav") as fh:
            fh.write(wav)
            fh.flush()
            subprocess.run([exe, *args, fh.name], check=False, timeout=300, capture_output=True)
        return player
    raise VoiceError("no_player")
