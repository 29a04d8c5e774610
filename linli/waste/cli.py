"""`linli waste ...`: sorting guidance and terminal voice prompts."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="Waste sorting: guidance for items and spoken bin prompts.", no_args_is_help=True
)

_LANGS = ("zh", "en")


def _emit(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))


@app.command()
def guide(
    items: list[str] = typer.Argument(..., help="Item names, in Chinese or English."),
    sorting_list: Path | None = typer.Option(
        None,
        "--list",
        help="Sorting list CSV (item,category_code) to use instead of the "
        "one found automatically; a model is trained on it.",
    ),
    threshold: float | None = typer.Option(
        None, help="Below this confidence the answer suggests asking staff."
    ),
) -> None:
    """Print one JSON object per item: category, confidence, source and explanation."""
    from linli.waste import guidance as g

    try:
        if sorting_list is not None:
            guide_ = g.WasteGuide.from_items(g.load_item_list(sorting_list))
        else:
            guide_ = g.default_guide()
    except g.GuidanceError as exc:
        _emit({"error": exc.code, "message": str(exc)})
        raise typer.Exit(2) from None
    if threshold is not None:
        guide_ = g.WasteGuide(guide_.model, guide_.items, guide_.lexicon, threshold)
    failed = False
    for item in items:
        try:
            _emit(guide_.guide(item).to_dict())
        except g.GuidanceInputError as exc:
            failed = True
            shown = item if len(item) <= 40 else item[:40] + "…"
            _emit({"item": shown, "error": exc.code, "message": str(exc)})
    if failed:
        raise typer.Exit(1)


def _parse_params(params: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in params:
        name, sep, value = p.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {p!r}", param_hint="--param")
        out[name.strip()] = value
    return out


def _langs(lang: str) -> list[str]:
    if lang == "both":
        return list(_LANGS)
    if lang not in _LANGS:
        raise typer.BadParameter("use zh, en or both", param_hint="--lang")
    return [lang]


def _deliver(
    wav: bytes, text: str, lang: str, out: Path | None, play: bool, extra: dict[str, Any]
) -> None:
    from linli.waste import voice

    with wave.open(io.BytesIO(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    record: dict[str, Any] = {
        **extra,
        "lang": lang,
        "text": text,
        "bytes": len(wav),
        "seconds": round(seconds, 2),
        "engine": voice.engine_name(),
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(wav)
        record["file"] = str(out)
    if play:
        record["player"] = voice.play(wav)
    _emit(record)


def _out_for(out: Path | None, lang: str, many: bool) -> Path | None:
    if out is None or not many:
        return out
    return out.with_name(f"{out.stem}.{lang}{out.suffix or '.wav'}")


@app.command()
def say(
    key: str = typer.Argument(..., help="Prompt key (see `linli waste prompts`)."),
    lang: str = typer.Option("both", help="zh, en or both."),
    param: list[str] = typer.Option([], "--param", "-p", help="Template value NAME=VALUE."),
    out: Path | None = typer.Option(
        None, help="Write the WAV here (NAME.zh.wav / NAME.en.wav for both languages)."
    ),
    play: bool = typer.Option(False, help="Play the prompt on this machine's speaker."),
) -> None:
    """Speak a prompt template (e.g. break_bag, outside_hours -p next_open=18:00)."""
    from linli.waste import voice

    params = _parse_params(param)
    langs = _langs(lang)
    try:
        for lg in langs:
            text = voice.render_prompt(key, lg, **params)
            wav = voice.synthesize(text, lg)
            _deliver(wav, text, lg, _out_for(out, lg, len(langs) > 1), play, {"key": key})
    except voice.VoiceError as exc:
        _emit({"key": key, "error": exc.code, "message": str(exc)})
        raise typer.Exit(1) from None


@app.command()
def speak(
    text: str = typer.Argument(..., help="Text to speak."),
    lang: str = typer.Option("zh", help="zh or en."),
    out: Path | None = typer.Option(None, help="Write the WAV here."),
    play: bool = typer.Option(False, help="Play it on this machine's speaker."),
) -> None:
    """Speak free text in Mandarin or English."""
    from linli.waste import voice

    try:
        lg = _langs(lang)[0] if lang != "both" else "zh"
        _deliver(voice.synthesize(text, lg), text, lg, out, play, {})
    except voice.VoiceError as exc:
        _emit({"error": exc.code, "message": str(exc)})
        raise typer.Exit(1) from None


@app.command()
def prompts() -> None:
    """List the prompt templates (key, English, Chinese)."""
    from linli.waste import voice

    for key, texts in voice.PROMPTS.items():
        _emit({"key": key, **texts})


@app.command()
def engine() -> None:
    """Show the speech engine in use and the voices per language."""
    from linli.waste import voice

    try:
        eng = voice.get_engine()
        _emit({"engine": eng.name, "voices": {lg: eng.voice_for(lg) for lg in _LANGS}})
    except voice.VoiceError as exc:
        _emit({"error": exc.code, "message": str(exc)})
        raise typer.Exit(1) from None


@app.command("build-model")
def build_model(
    sorting_list: Path | None = typer.Option(None, "--list", help="Sorting list CSV."),
    out: Path | None = typer.Option(None, help="Model file (default: the shipped one)."),
) -> None:
    """Retrain the shipped guidance model (linli/waste/data/model.json) on the list."""
    from linli.waste import guidance as g

    try:
        path = g.build_model(sorting_list, out)
    except g.GuidanceError as exc:
        _emit({"error": exc.code, "message": str(exc)})
        raise typer.Exit(2) from None
    _emit({"model": str(path), "bytes": path.stat().st_size})
