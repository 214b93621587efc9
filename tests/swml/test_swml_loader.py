"""Loading documents from text and files: errors name the field path and the line; warnings too."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from callgate.swml import AI, DocumentError, Issue, LoadResult, Severity, load_document, load_text
from callgate.swml.loader import parse_document, read_text


def _load(text: str, source: str = "agent.yaml") -> LoadResult:
    return load_text(dedent(text).lstrip("\n"), source=source)


def _errors(text: str, source: str = "agent.yaml") -> list[Issue]:
    with pytest.raises(DocumentError) as info:
        _load(text, source)
    errors = info.value.errors
    assert errors, "a DocumentError must carry at least one error"
    return errors


def _one_error(text: str) -> Issue:
    (error,) = _errors(text)
    return error


def _warnings(text: str) -> list[tuple[str, int | None, str]]:
    return [(w.path, w.line, w.message) for w in _load(text).warnings]


MINIMAL = """
version: 1.0.0
sections:
  main:
    - ai:
        prompt:
          text: hello
"""


# ---------------------------------------------------------------- syntax


def test_broken_yaml_names_the_line() -> None:
    error = _one_error(
        """
        version: 1.0.0
        sections:
          main:
            - ai:
                prompt:
                  text: "unterminated
        """
    )
    assert error.path == ""
    assert error.line is not None and error.line >= 6
    assert error.message.startswith("invalid YAML")
    assert str(error).startswith(f"agent.yaml:{error.line}: invalid YAML")


def test_bad_indentation_names_the_line() -> None:
    error = _one_error("sections:\n  main:\n    - answer\n   - hangup\n")
    assert error.line == 4
    assert "invalid YAML" in error.message


def test_broken_json_reports_json_line_and_column() -> None:
    text = '{\n  "sections": {\n    "main": [\n      {"answer": {}},,\n    ]\n  }\n}\n'
    with pytest.raises(DocumentError) as info:
        load_text(text, source="agent.json")
    (error,) = info.value.errors
    assert error.line == 4
    assert error.message.startswith("invalid JSON")
    assert "column" in error.message


def test_json_document_gets_lines_too() -> None:
    document = {"version": "1.0.0", "sections": {"main": [{"ai": {"prompt": {"text": 5.5}}}]}}
    text = json.dumps(document, indent=2)
    with pytest.raises(DocumentError) as info:
        load_text(text, source="agent.json")
    (error,) = info.value.errors
    assert error.path == "sections.main[0].ai.prompt.text"
    lines = text.splitlines()
    assert error.line == next(n for n, line in enumerate(lines, 1) if '"text": 5.5' in line)


def test_empty_document() -> None:
    assert "empty" in _one_error("   \n# just a comment\n").message


def test_several_yaml_documents_are_refused() -> None:
    error = _one_error("sections: {main: []}\n---\nsections: {main: []}\n")
    assert error.line == 2


def test_document_must_be_a_mapping() -> None:
    error = _one_error("- answer\n- hangup\n")
    assert error.path == ""
    assert "object with `version` and `sections`" in error.message


# ---------------------------------------------------------------- structure


def test_missing_sections() -> None:
    error = _one_error("version: 1.0.0\nfoo: 1\n")
    assert error.path == "sections"
    assert error.line == 1
    assert "missing `sections`" in error.message


def test_sections_without_main() -> None:
    error = _one_error("sections:\n  other:\n    - answer\n")
    assert error.path == "sections"
    assert "no `main`" in error.message


def test_verb_list_not_a_list() -> None:
    error = _one_error("version: 1.0.0\nsections:\n  main:\n    ai:\n      prompt: {text: hi}\n")
    assert (error.path, error.line) == ("sections.main", 3)
    assert "must be a list of verbs" in error.message


def test_verb_that_is_not_an_object() -> None:
    error = _one_error("sections:\n  main:\n    - 42\n")
    assert (error.path, error.line) == ("sections.main[0]", 3)


def test_wrong_type_names_path_and_line() -> None:
    error = _one_error(
        """
        sections:
          main:
            - ai:
                prompt:
                  text: hi
                  temperature: warm
        """
    )
    assert error.path == "sections.main[0].ai.prompt.temperature"
    assert error.line == 6
    assert "warm" in error.message
    assert str(error).startswith("agent.yaml:6: sections.main[0].ai.prompt.temperature: ")


def test_bad_regex_in_pattern_names_path_and_line() -> None:
    error = _one_error(
        """
        sections:
          main:
            - answer
            - ai:
                prompt: {text: hi}
                SWAIG:
                  functions:
                    - function: a
                      description: a
                      data_map: {expressions: [{string: x, pattern: '.*', output: {response: ok}}]}
                    - function: b
                      description: b
                      data_map: {expressions: [{string: x, pattern: '.*', output: {response: ok}}]}
                    - function: c
                      description: c
                      data_map:
                        expressions:
                          - string: "${args.x}"
                            pattern: "/(unclosed/i"
                            output: {response: ok}
        """
    )
    assert error.path == "sections.main[1].ai.SWAIG.functions[2].data_map.expressions[0].pattern"
    assert error.line == 19
    assert error.message.startswith("invalid regular expression '/(unclosed/i'")


def test_bad_regex_flag_is_an_error() -> None:
    error = _one_error(
        """
        sections:
          main:
            - ai:
                prompt: {text: hi}
                SWAIG:
                  functions:
                    - function: a
                      description: a
                      data_map: {expressions: [{string: x, pattern: '/x/q', output: {response: ok}}]}
        """
    )
    assert error.path.endswith("expressions[0].pattern")
    assert "flag" in error.message


def test_function_without_name() -> None:
    error = _one_error(
        """
        sections:
          main:
            - ai:
                prompt: {text: hi}
                SWAIG:
                  functions:
                    - purpose: no name here
                      web_hook_url: https://example.com/f
        """
    )
    assert error.path == "sections.main[0].ai.SWAIG.functions[0].function"
    assert error.line == 7
    assert "required field 'function' is missing" in error.message


def test_duplicate_function_names_are_an_error() -> None:
    error = _one_error(
        """
        sections:
          main:
            - ai:
                prompt: {text: hi}
                SWAIG:
                  defaults: {web_hook_url: https://example.com/swaig}
                  functions:
                    - {function: lookup, description: one}
                    - {function: lookup, description: two}
        """
    )
    assert error.path == "sections.main[0].ai.SWAIG.functions[1].function"
    assert error.line == 9
    assert "duplicate" in error.message


def test_every_error_is_reported_not_just_the_first() -> None:
    errors = _errors(
        """
        sections:
          main:
            - ai:
                prompt: {text: hi, top_p: high}
                pronounce:
                  - {replace: API}
            - connect: {from: '+15550001111'}
            - sip_refer: {}
        """
    )
    assert [e.path for e in errors] == [
        "sections.main[0].ai.prompt.top_p",
        "sections.main[0].ai.pronounce[0].with",
        "sections.main[1].connect",
        "sections.main[2].sip_refer.to_uri",
    ]
    assert [e.line for e in errors] == [4, 6, 7, 8]


def test_union_type_errors_are_merged_on_one_path() -> None:
    error = _one_error(
        """
        sections:
          main:
            - ai:
                prompt: {text: hi}
                SWAIG:
                  functions:
                    - function: f
                      description: f
                      web_hook_url: https://example.com/f
                      fillers: 12
        """
    )
    assert error.path == "sections.main[0].ai.SWAIG.functions[0].fillers"
    assert error.line == 10


# ---------------------------------------------------------------- verbs


def test_multi_key_item_is_several_verbs_and_label_labels_the_next() -> None:
    document = _load(
        """
        sections:
          main:
            - answer
            - label: start
              play: {url: "say:hello"}
              hangup: {}
            - label: end
        """
    ).document
    verbs = document.sections["main"]
    assert [(v.name, v.label, v.path) for v in verbs] == [
        ("answer", None, "sections.main[0]"),
        ("play", "start", "sections.main[1].play"),
        ("hangup", None, "sections.main[1].hangup"),
        ("label", "end", "sections.main[2].label"),
    ]
    assert verbs[1].args == {"url": "say:hello"}


@pytest.mark.parametrize(
    ("verb", "path", "needle"),
    [
        ("connect: {from: '+15550001111'}", "sections.main[0].connect", "connect needs `to`"),
        ("transfer: {}", "sections.main[0].transfer.dest", "'dest' is missing"),
        ("sip_refer: {status_url: x}", "sections.main[0].sip_refer.to_uri", "'to_uri' is missing"),
        ("send_sms: {to_number: '+1', from_number: '+2'}", "sections.main[0].send_sms", "body"),
        ("send_sms: {to_number: '+1', body: hi}", "sections.main[0].send_sms.from_number", "missing"),
        ("hangup: {reason: later}", "sections.main[0].hangup.reason", "'busy'"),
        ("play: {volume: 3}", "sections.main[0].play", "url"),
        ("goto: {when: 'x'}", "sections.main[0].goto.label", "missing"),
        ("sleep: {}", "sections.main[0].sleep.duration", "missing"),
        ("unset: {a: 1}", "sections.main[0].unset", "string"),
        ("request: {url: https://example.com}", "sections.main[0].request.method", "missing"),
        (
            "switch: {variable: x, case: {a: [{connect: {}}]}}",
            "sections.main[0].switch.case.a[0].connect",
            "to",
        ),
        ("cond: [{when: 'x', then: [{transfer: 5}]}]", "sections.main[0].cond[0].then[0].transfer", ""),
        ("ai: [1, 2]", "sections.main[0].ai", "dictionary"),
    ],
)
def test_light_verb_validation(verb: str, path: str, needle: str) -> None:
    error = _one_error(f"sections:\n  main:\n    - {verb}\n")
    assert error.path == path
    assert error.line == 3
    assert needle in error.message


@pytest.mark.parametrize(
    "verb",
    [
        "answer",
        "hangup",
        "answer: {max_duration: 3600}",
        "play: 'https://example.com/a.mp3'",
        "play: {urls: ['say:hi', 'silence:1']}",
        "connect: {to: '+15551234567', from: '+15557654321', timeout: 20}",
        "connect: {serial: [{to: 'sip:a@example.com'}]}",
        "transfer: {dest: 'https://example.com/next'}",
        "sip_refer: {to_uri: 'sip:desk@example.com'}",
        "send_sms: {to_number: '+15551234567', from_number: '+15557654321', body: 'hi'}",
        "sleep: 500",
        "sleep: {duration: '${wait_ms}'}",
        "set: {a: 1}",
        "unset: [a, b]",
        "goto: {label: start, max: 3}",
        "return: {status: ok}",
        "record_call: {format: wav}",
        "execute: {dest: other, on_return: [{hangup: {}}]}",
    ],
)
def test_valid_verbs_load_without_issues(verb: str) -> None:
    result = _load(f"sections:\n  main:\n    - {verb}\n  other:\n    - hangup\n")
    assert result.warnings == []
    assert result.document.sections["main"][0].name == verb.split(":")[0]


def test_unknown_verb_is_a_warning() -> None:
    assert _warnings("sections:\n  main:\n    - teleport: {to: mars}\n") == [
        ("sections.main[0].teleport", 3, "unknown verb 'teleport' (kept; callgate will not run it)")
    ]


def test_bare_ai_document_is_accepted_with_a_warning() -> None:
    result = _load("ai:\n  prompt:\n    text: hi\n")
    (verb,) = result.document.sections["main"]
    assert verb.name == "ai" and isinstance(verb.args, AI) and verb.path == "ai"
    assert [(w.path, w.line) for w in result.warnings] == [("", 1)]
    assert "no `sections`" in result.warnings[0].message


def test_bare_ai_document_errors_use_the_ai_path() -> None:
    error = _one_error("ai:\n  prompt:\n    text: hi\n    top_p: lots\n")
    assert (error.path, error.line) == ("ai.prompt.top_p", 4)


# ---------------------------------------------------------------- both generations, flexible values


def test_string_booleans_and_numbers_are_accepted_in_both_forms() -> None:
    ai = _load(
        """
        sections:
          main:
            - ai:
                prompt: {text: hi, temperature: "0.3", max_tokens: "200"}
                params: {swaig_allow_swml: 'false', wait_for_user: "TRUE", inactivity_timeout: "30000"}
                pronounce:
                  - {replace: SQL, with: sequel, ignore_case: 'false'}
                  - {replace: API, with: A P I, ignore_case: true}
                SWAIG:
                  defaults: {web_hook_url: https://example.com/swaig}
                  functions:
                    - {function: a, purpose: a, active: 'false'}
                    - {function: b, purpose: b, active: false}
                    - {function: c, purpose: c, active: 'true'}
        """
    ).document.find_ai()
    assert ai is not None
    assert ai.prompt.temperature == 0.3 and ai.prompt.max_tokens == 200
    assert ai.params.swaig_allow_swml is False and ai.params.wait_for_user is True
    assert ai.params.inactivity_timeout == 30000
    assert [p.ignore_case for p in ai.pronounce] == [False, True]
    assert [f.active for f in ai.SWAIG.functions] == [False, False, True]


def test_seed_generation_post_prompt_string_and_auth() -> None:
    ai = _load(
        """
        sections:
          main:
            - ai:
                prompt: {text: hi}
                post_prompt: Summarize the call as a json object
                post_prompt_url: https://example.com/post
                post_prompt_auth_user: me
                post_prompt_auth_password: secret
        """
    ).document.find_ai()
    assert ai is not None and ai.post_prompt is not None
    assert ai.post_prompt.text == "Summarize the call as a json object"
    assert (ai.post_prompt_auth_user, ai.post_prompt_auth_password) == ("me", "secret")


def test_phone_numbers_stay_strings() -> None:
    verb = _load("sections:\n  main:\n    - connect: {to: +15551234567}\n").document.sections["main"][0]
    assert verb.args == {"to": "+15551234567"}


# ---------------------------------------------------------------- warnings


def test_unknown_fields_are_kept_and_warned_with_path_and_line() -> None:
    result = _load(
        """
        sections:
          main:
            - ai:
                prompt:
                  text: hi
                  temprature: 0.2
                params:
                  end_of_speech_timeout: 700
                  my_own_param: 1
                languages:
                  - {name: English, code: en-US, voice: rime.spore, speed: fast}
                SWAIG:
                  functions:
                    - function: f
                      description: f
                      web_hook_url: https://example.com/f
                      colour: blue
        """
    )
    assert [(w.path, w.line) for w in result.warnings] == [
        ("sections.main[0].ai.prompt.temprature", 6),
        ("sections.main[0].ai.params.my_own_param", 9),
        ("sections.main[0].ai.SWAIG.functions[0].colour", 17),
    ]
    assert "did you mean 'temperature'?" in result.warnings[0].message
    ai = result.document.find_ai()
    assert ai is not None
    assert ai.prompt.model_extra == {"temprature": 0.2}
    assert ai.params.model_extra == {"end_of_speech_timeout": 700, "my_own_param": 1}


def test_top_level_unknown_field_and_repeated_key_warn() -> None:
    result = _load("version: 1.0.0\nversion: 1.0.0\nsections:\n  main:\n    - answer\nextra: 1\n")
    assert [(w.path, w.line) for w in result.warnings] == [("version", 2), ("extra", 6)]


PRIVATE = """
sections:
  main:
    - ai:
        prompt: {text: hi}
        params: {swaig_allow_private_urls: ALLOW}
        SWAIG:
          defaults: {web_hook_url: "http://user:pw@localhost:8080/swaig"}
          includes:
            - {url: "http://10.1.2.3/functions", functions: [a]}
          functions:
            - function: f
              description: f
              web_hook_url: "http://[::1]:9000/f"
            - function: g
              description: g
              data_map:
                webhooks:
                  - url: "http://192.168.0.5/${args.x}"
                    output: {response: ok}
                  - url: "https://${env.host}/x"
                    output: {response: ok}
                  - url: "https://api.example.com/x"
                    output: {response: ok}
"""


def test_private_webhook_urls_warn() -> None:
    result = _load(PRIVATE.replace("ALLOW", "false"))
    assert [(w.path, w.line) for w in result.warnings] == [
        ("sections.main[0].ai.SWAIG.defaults.web_hook_url", 7),
        ("sections.main[0].ai.SWAIG.includes[0].url", 9),
        ("sections.main[0].ai.SWAIG.functions[0].web_hook_url", 13),
        ("sections.main[0].ai.SWAIG.functions[1].data_map.webhooks[0].url", 18),
    ]
    assert all("swaig_allow_private_urls" in w.message for w in result.warnings)
    assert "pw" not in " ".join(w.message for w in result.warnings)


def test_private_urls_allowed_by_param_or_origin_host() -> None:
    assert _load(PRIVATE.replace("ALLOW", "true")).warnings == []
    data, lines = read_text(dedent(PRIVATE.replace("ALLOW", "false")))
    result = parse_document(data, source="x", lines=lines, allowed_hosts=["LOCALHOST", "10.1.2.3"])
    assert [w.path.rsplit(".", 2)[-2:] for w in result.warnings] == [
        ["functions[0]", "web_hook_url"],
        ["webhooks[0]", "url"],
    ]


def test_function_setting_conflicts_warn() -> None:
    warnings = _warnings(
        """
        sections:
          main:
            - ai:
                prompt: {text: hi}
                SWAIG:
                  native_functions: [check_time, make_coffee]
                  functions:
                    - function: hangup_now
                      description: end the call
                      builtin: hangup
                      web_hook_url: https://example.com/x
                    - function: both
                      description: both
                      web_hook_url: https://example.com/y
                      data_map: {expressions: [{string: a, pattern: a, output: {response: ok}}]}
                    - function: nowhere
                    - function: bad name!
                      description: x
                      data_map:
                        output:
                          response: ok
                          action: [{sey: hi}, "stop", {SWML: {version: 1.0.0}}]
        """
    )
    assert [(path.split("ai.")[1], line) for path, line, _ in warnings] == [
        ("SWAIG.native_functions[1]", 6),
        ("SWAIG.functions[0].web_hook_url", 11),
        ("SWAIG.functions[1].web_hook_url", 14),
        ("SWAIG.functions[2]", 16),
        ("SWAIG.functions[2]", 16),
        ("SWAIG.functions[3].function", 17),
        ("SWAIG.functions[3].data_map.output.action[0].sey", 22),
        ("SWAIG.functions[3].data_map.output.action[1]", 22),
        ("SWAIG.functions[3].data_map.output.action[2].SWML", 22),
    ]
    messages = [message for _, _, message in warnings]
    assert "make_coffee" in messages[0]
    assert "builtin: hangup" in messages[1]
    assert "no `description`" in messages[3]
    assert "no data_map, web_hook_url or builtin" in messages[4]
    assert "did you mean 'say'?" in messages[6]


def test_nested_swml_action_is_checked_like_a_document() -> None:
    error = _one_error(
        """
        sections:
          main:
            - ai:
                prompt: {text: hi}
                SWAIG:
                  functions:
                    - function: t
                      description: t
                      data_map:
                        expressions:
                          - string: x
                            pattern: .*
                            output:
                              response: ok
                              action:
                                - SWML:
                                    sections:
                                      main:
                                        - send_sms: {to_number: '+1', from_number: '+2'}
        """
    )
    assert error.path.endswith("output.action[0].SWML.sections.main[0].send_sms")
    assert error.line == 19


def test_prompt_warnings() -> None:
    warnings = _warnings("sections:\n  main:\n    - ai:\n        prompt: {}\n")
    assert [(path, line) for path, line, _ in warnings] == [("sections.main[0].ai.prompt", 4)]
    assert "neither `text` nor `pom`" in warnings[0][2]
    both = _warnings("sections:\n  main:\n    - ai:\n        prompt: {text: a, pom: [{body: b}]}\n")
    assert [(path, line) for path, line, _ in both] == [("sections.main[0].ai.prompt", 4)]
    assert "both" in both[0][2]


def test_hard_stop_time_format_is_checked_with_path_and_line() -> None:
    error = _one_error(
        "sections:\n  main:\n    - ai:\n        prompt: {text: hi}\n        params:\n"
        "          hard_stop_time: soon\n"
    )
    assert (error.path, error.line) == ("sections.main[0].ai.params.hard_stop_time", 6)


# ---------------------------------------------------------------- files


def test_load_document_from_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(dedent(MINIMAL), encoding="utf-8")
    result = load_document(path)
    assert result.source == str(path) and result.call is None
    assert result.document.find_ai() is not None
    assert load_document(str(path)).document == result.document


def test_load_document_json_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    document = {"sections": {"main": [{"ai": {"prompt": {"text": "hi"}}}]}}
    path.write_text(json.dumps(document), encoding="utf-8")
    ai = load_document(path).document.find_ai()
    assert ai is not None and ai.prompt.text == "hi"


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as info:
        load_document(tmp_path / "nope.yaml")
    assert "cannot read the file" in info.value.issues[0].message
    binary = tmp_path / "agent.yaml"
    binary.write_bytes(b"sections: \xff\xfe\n")
    with pytest.raises(DocumentError) as info:
        load_document(binary)
    assert "not UTF-8" in info.value.issues[0].message


def test_issue_string_and_dict_forms() -> None:
    issue = Issue(Severity.WARNING, "sections.main[0].ai", 3, "careful", "a.yaml")
    assert str(issue) == "a.yaml:3: sections.main[0].ai: careful"
    assert str(Issue(Severity.ERROR, "", None, "broken", None)) == "<document>: broken"
    assert issue.to_dict() == {
        "severity": "warning",
        "path": "sections.main[0].ai",
        "line": 3,
        "message": "careful",
        "source": "a.yaml",
    }


def test_document_error_message_summarises() -> None:
    with pytest.raises(DocumentError) as info:
        _load("sections:\n  main:\n    - sip_refer: {}\n    - transfer: {}\n")
    assert str(info.value).startswith("agent.yaml:3: sections.main[0].sip_refer.to_uri:")
    assert "(and 1 more errors)" in str(info.value)


def test_parse_document_without_lines() -> None:
    data = {"sections": {"main": [{"ai": {"prompt": {"text": "hi", "top_p": "lots"}}}]}}
    with pytest.raises(DocumentError) as info:
        parse_document(data, source="inline")
    (error,) = info.value.errors
    assert (error.path, error.line) == ("sections.main[0].ai.prompt.top_p", None)
    assert str(error).startswith("inline: sections.main[0].ai.prompt.top_p: ")
    result = parse_document({"sections": {"main": ["answer", {"hangup": {}}]}}, source=None)
    assert [verb.name for verb in result.document.sections["main"]] == ["answer", "hangup"]


def test_yaml_aliases_work_but_alias_bombs_are_refused() -> None:
    result = _load(
        """
        sections:
          main:
            - play: &greeting {url: "say:hello"}
            - play: *greeting
        """
    )
    assert [verb.args for verb in result.document.sections["main"]] == [{"url": "say:hello"}] * 2
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        previous = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        bomb.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    error = _one_error("\n".join(bomb) + "\nsections: {main: []}\n")
    assert "YAML aliases" in error.message


@pytest.mark.parametrize("text", ["[" * 50_000 + "]" * 50_000, "a: " + "[" * 50_000 + "]" * 50_000])
def test_absurd_nesting_is_an_error_not_a_crash(text: str) -> None:
    with pytest.raises(DocumentError) as info:
        load_text(text, source="deep")
    assert info.value.errors


def test_private_transfer_destination_url_warns() -> None:
    warnings = _warnings(
        """
        sections:
          main:
            - ai:
                prompt: {text: hi}
                SWAIG:
                  functions:
                    - function: transfer_call
                      description: transfer
                      builtin: transfer
                      transfer:
                        destinations: []
                        destination_url: http://192.168.1.20/destinations
        """
    )
    assert [(path, line) for path, line, _ in warnings] == [
        ("sections.main[0].ai.SWAIG.functions[0].transfer.destination_url", 12)
    ]


def test_control_character_names_its_line() -> None:
    with pytest.raises(DocumentError) as info:
        load_text("sections:\n  main:\n    - play: {url: 'say:\x07'}\n", source="bell.yaml")
    (error,) = info.value.errors
    assert error.line == 3
    assert "#x0007" in error.message
