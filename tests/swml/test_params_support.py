"""Every SignalWire ai.params name is honoured or accepted-and-ignored with a reason; the audible
ignored ones warn in validate; docs/signalwire-parameters.md lists them all."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from callgate.swml import load_text
from callgate.swml.known import KNOWN_PARAMS
from callgate.swml.models import Params
from callgate.swml.params_support import HONOURED, IGNORED, audible_difference

DOC = Path(__file__).resolve().parents[2] / "docs" / "signalwire-parameters.md"


def test_every_signalwire_param_is_classified_once_and_documented() -> None:
    assert not HONOURED & set(IGNORED)
    assert HONOURED | set(IGNORED) >= KNOWN_PARAMS
    assert HONOURED | set(IGNORED) <= KNOWN_PARAMS | set(Params.model_fields)
    text = DOC.read_text(encoding="utf-8")
    for name in HONOURED:
        assert f"| `{name}` | honoured |" in text, name
    for name, ignored in IGNORED.items():
        assert f"| `{name}` | accepted and ignored" in text, name
        assert ignored.reason in text
        assert ("**audible**" in text.split(f"| `{name}` |")[1].split("\n")[0]) == ignored.audible, name


def test_audible_difference_only_for_non_default_values() -> None:
    assert audible_difference("enable_pause", True) is not None
    assert audible_difference("enable_pause", "false") is None
    assert audible_difference("tts_number_format", "international") is None
    assert audible_difference("tts_number_format", "national") is not None
    assert audible_difference("ai_volume", 0) is None
    assert audible_difference("ai_volume", "10") is not None
    assert audible_difference("background_file_volume", -10) is not None
    assert audible_difference("background_file", "https://x.example.com/m.mp3") is None  # honoured
    assert audible_difference("debug", True) is None  # not audible
    assert audible_difference("wait_for_user", True) is None  # honoured


def test_validate_warns_about_audible_ignored_params_with_their_path() -> None:
    text = """
    version: 1.0.0
    sections:
      main:
        - ai:
            prompt: {text: hi}
            params:
              enable_pause: true
              tts_number_format: national
              background_file_volume: 0
              debug: true
              end_of_speech_timeout: 500
    """
    result = load_text(dedent(text).lstrip("\n"), source="agent.yaml")
    warned = {w.path: w.message for w in result.warnings}
    assert set(warned) == {
        "sections.main[0].ai.params.enable_pause",
        "sections.main[0].ai.params.tts_number_format",
    }
    assert "accepted but ignored by callgate" in warned["sections.main[0].ai.params.enable_pause"]
    assert "caller hears a difference" in warned["sections.main[0].ai.params.tts_number_format"]


def test_validate_warns_about_actions_callgate_does_not_apply() -> None:
    """A `settings` (swaig_allow_settings) or turn-timing action in the document would change the rest
    of the call on SignalWire: never silently ignored."""
    text = """
    version: 1.0.0
    sections:
      main:
        - ai:
            prompt: {text: hi}
            SWAIG:
              functions:
                - function: slow_down
                  description: slow down
                  data_map:
                    output:
                      response: ok
                      action:
                        - settings: {end_of_speech_timeout: 2000}
                        - end_of_speech_timeout: 2000
                        - say: fine
    """
    result = load_text(dedent(text).lstrip("\n"), source="agent.yaml")
    warned = {w.path: w.message for w in result.warnings}
    base = "sections.main[0].ai.SWAIG.functions[0].data_map.output.action"
    assert set(warned) == {f"{base}[0].settings", f"{base}[1].end_of_speech_timeout"}
    assert warned[f"{base}[0].settings"].startswith("accepted but not applied by callgate: params are not")


def _non_default(default: object) -> object:
    if isinstance(default, bool):
        return not default
    if isinstance(default, int | float):
        return default + 7
    return "something-else"


@pytest.mark.parametrize("name", sorted(name for name, ignored in IGNORED.items() if ignored.audible))
def test_every_audible_ignored_param_is_a_validate_warning(name: str) -> None:
    """The parameter table's promise: no ignored parameter that changes what a caller hears is silent."""
    value = _non_default(IGNORED[name].default)
    document = {"sections": {"main": [{"ai": {"prompt": {"text": "hi"}, "params": {name: value}}}]}}
    result = load_text(json.dumps(document), source="agent.json")
    warned = {w.path: w.message for w in result.warnings}
    assert warned.get(f"sections.main[0].ai.params.{name}", "").startswith(
        f"accepted but ignored by callgate — {IGNORED[name].reason}"
    ), warned


def test_a_check_for_input_function_is_a_validate_warning() -> None:
    document = {
        "sections": {
            "main": [
                {
                    "ai": {
                        "prompt": {"text": "hi"},
                        "SWAIG": {
                            "functions": [
                                {
                                    "function": "check_for_input",
                                    "description": "new SMS",
                                    "web_hook_url": "https://sms.example.com/poll",
                                }
                            ]
                        },
                    }
                }
            ]
        }
    }
    result = load_text(json.dumps(document), source="agent.json")
    warned = {w.path: w.message for w in result.warnings}
    assert "not polled by callgate" in warned["sections.main[0].ai.SWAIG.functions[0].function"]
