"""Typed model of the SWML `ai` verb, accepting both generations of SignalWire documents.

The seed generation writes functions with `purpose` + `argument`, post_prompt as a plain string and
booleans as 'true'/'false'; today's SDK writes `description` + `parameters`. Both load into the same
models; the accessors (`Function.description_text`, `Function.parameters_schema`) hide the difference.

Actions (`output.action`) stay raw here: they are templates, expanded at run time by `swaig` and only
then parsed into typed actions. Unknown fields are kept (`extra="allow"`); the loader reports them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from callgate.durations import Duration, parse_hard_stop
from callgate.swml.patterns import compile_pattern
from callgate.swml.types import FlexBool, FlexFloat, FlexInt


class SwmlModel(BaseModel):
    """Base: keep unknown fields (reported as warnings by the loader), accept field names or aliases."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# ---------------------------------------------------------------- prompts


class PomSection(SwmlModel):
    """One section of the Prompt Object Model, as signalwire-agents renders it."""

    title: str | None = None
    body: str | None = None
    bullets: list[str] = Field(default_factory=list)
    numbered: FlexBool | None = None
    # signalwire_pom writes `numberedBullets`; the snake_case spelling is accepted too.
    numbered_bullets: FlexBool | None = Field(
        default=None, validation_alias=AliasChoices("numberedBullets", "numbered_bullets")
    )
    subsections: list[PomSection] = Field(default_factory=list)


# ---------------------------------------------------------------- contexts and steps

Fillers = dict[str, list[str]] | list[dict[str, list[str]]] | list[str]
"""Filler phrases by language code (or `default`): SignalWire's list of one-key objects, the SDK's
single object, or a plain list for every language."""


class StepReset(SwmlModel):
    """The SDK's `reset` of a step: how a context change made from this step enters the new context."""

    system_prompt: str | None = None
    user_prompt: str | None = None
    consolidate: FlexBool = False
    full_reset: FlexBool = False


GATHER_TYPES = ("string", "integer", "number", "boolean")


class GatherQuestion(SwmlModel):
    """One question of a step's `gather_info` (the SDK's GatherQuestion)."""

    key: str
    question: str
    type: str = "string"  # the JSON schema type of gather_submit's `answer`
    confirm: FlexBool = False
    prompt: str | None = None  # extra instructions while this question is asked
    functions: list[str] | None = None  # document functions offered while this question is asked

    @field_validator("functions", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class GatherInfo(SwmlModel):
    """A step's `gather_info`: questions asked one at a time, answers kept in global_data."""

    questions: list[GatherQuestion] = Field(default_factory=list)
    prompt: str | None = None  # the preamble, shown while the questions are asked
    output_key: str | None = None  # global_data key the answers go under; None: top level
    completion_action: str | None = None  # "next_step", a step name, or None (back to the step)


class ContextStep(SwmlModel):
    """One step of a context: its instructions, completion criteria, tools and where it may go."""

    name: str
    text: str | None = None
    pom: list[PomSection] | None = None
    step_criteria: str | None = None
    functions: str | list[str] | None = None  # a whitelist; "none" or [] for no functions
    valid_steps: list[str] | None = None
    valid_contexts: list[str] | None = None
    skip_user_turn: FlexBool | str = False
    skip_to_next_step: FlexBool = False
    end: FlexBool = False
    reset: StepReset | None = None
    gather_info: GatherInfo | None = None

    @field_validator("valid_steps", "valid_contexts", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class PromptContext(SwmlModel):
    """One entry of `prompt.contexts`."""

    steps: list[ContextStep] = Field(default_factory=list)
    isolated: FlexBool = False
    enter_fillers: Fillers | None = None
    exit_fillers: Fillers | None = None
    text: str | None = None
    prompt: str | None = None  # the SDK writes the context's own prompt as `prompt`
    pom: list[PomSection] | None = None
    system_prompt: str | None = None
    consolidate: FlexBool = False
    full_reset: FlexBool = False
    user_prompt: str | None = None
    valid_contexts: list[str] | None = None
    valid_steps: list[str] | None = None
    post_prompt: str | None = None

    @field_validator("valid_steps", "valid_contexts", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class PromptSettings(SwmlModel):
    temperature: FlexFloat | None = None
    top_p: FlexFloat | None = None
    confidence: FlexFloat | None = None
    presence_penalty: FlexFloat | None = None
    frequency_penalty: FlexFloat | None = None
    max_tokens: FlexInt | None = None


class Prompt(PromptSettings):
    """`prompt`: instructions as `text` or as `pom` sections."""

    text: str | None = None
    pom: list[PomSection] | None = None
    contexts: dict[str, PromptContext] | None = None


class PostPrompt(PromptSettings):
    """`post_prompt`: a plain string (seed generation) or an object with its own settings."""

    text: str | None = None
    pom: list[PomSection] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"text": value}
        return value


# ---------------------------------------------------------------- functions


class Output(SwmlModel):
    """What a data_map expression or webhook produces: a response for the model and raw actions."""

    response: str | None = None
    action: list[Any] = Field(default_factory=list)
    # SignalWire: the model replies to the response first; the actions run after that reply.
    post_process: FlexBool = False

    @field_validator("action", mode="before")
    @classmethod
    def _action_list(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, dict):
            return [value]
        return value


class Expression(SwmlModel):
    """`string` (a template) is matched against `pattern` (plain or `/re/flags`)."""

    string: str
    pattern: str
    output: Output

    @field_validator("string", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return value if not isinstance(value, int | float | bool) else str(value)

    @field_validator("pattern", mode="before")
    @classmethod
    def _check_pattern(cls, value: Any) -> Any:
        if isinstance(value, int | float):
            value = str(value)
        if isinstance(value, str):
            try:
                compile_pattern(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value


class Foreach(SwmlModel):
    input_key: str
    output_key: str
    append: str
    max: FlexInt | None = None


class Webhook(SwmlModel):
    url: str
    method: str = "GET"
    headers: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] | None = None
    input_args_as_params: FlexBool = False
    required_args: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("required_args", "require_args")
    )
    error_keys: list[str] = Field(default_factory=list)
    foreach: Foreach | None = None
    expressions: list[Expression] = Field(default_factory=list)
    output: Output | None = None

    @field_validator("required_args", "error_keys", mode="before")
    @classmethod
    def _str_list(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class DataMap(SwmlModel):
    expressions: list[Expression] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
    output: Output | None = None
    # The SDK's DataMap.global_error_keys: apply to every webhook, beside each one's own.
    error_keys: list[str] = Field(default_factory=list)

    @field_validator("error_keys", mode="before")
    @classmethod
    def _str_list(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value


class TransferConfig(SwmlModel):
    """callgate's `transfer` block for `builtin: transfer` functions (DESIGN §4).

    Timeouts are durations: seconds as a number, or "20s", "1.5m", "500ms".
    """

    destinations: list[Any] | None = None
    mode: Literal["blind", "warm"] = "blind"
    destination_url: str | None = None
    destination_auth_user: str | None = None
    destination_auth_password: str | None = Field(
        default=None,
        validation_alias=AliasChoices("destination_auth_password", "destination_auth_pass"),
    )
    # callgate: extra HTTP headers for the destination server (beside basic auth); seconds to wait.
    destination_headers: dict[str, str] = Field(default_factory=dict)
    destination_timeout: Duration | None = None
    hold_music: str | None = None
    ring_timeout: Duration | None = None
    summary_prompt: str | None = None
    summary_timeout: Duration | None = None
    consult_prompt: str | None = None
    consult_timeout: Duration | None = None
    introduction: str | None = None
    caller_id: str | None = None
    msg: str | None = None
    err_msg: str | None = None
    assistants: dict[str, str] = Field(default_factory=dict)


class Function(SwmlModel):
    """One SWAIG function. Seed generation: purpose + argument; today's: description + parameters."""

    function: str
    purpose: str | None = None
    description: str | None = None
    argument: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    active: FlexBool = True
    meta_data: dict[str, Any] | None = None
    meta_data_token: str | None = None
    data_map: DataMap | None = None
    web_hook_url: str | None = None
    web_hook_auth_user: str | None = None
    web_hook_auth_password: str | None = Field(
        default=None,
        validation_alias=AliasChoices("web_hook_auth_password", "web_hook_auth_pass"),
    )
    fillers: dict[str, list[str]] | list[str] | None = None
    skip_fillers: FlexBool | None = None
    wait_file: str | None = None
    wait_file_loops: FlexInt | None = None
    wait_for_fillers: FlexBool | None = None
    builtin: Literal["hangup", "transfer"] | None = None
    transfer: TransferConfig | None = None
    # SignalWire: run this function when the call ends, like `hangup_hook` (never offered as a tool).
    is_hangup_hook: FlexBool = False

    @property
    def description_text(self) -> str:
        """What the model is told about the function (description, or the seed's purpose)."""
        return self.description or self.purpose or ""

    @property
    def parameters_schema(self) -> dict[str, Any]:
        """JSON Schema of the arguments (parameters, or the seed's argument); empty object if none."""
        schema = self.parameters if self.parameters is not None else self.argument
        if not schema:
            return {"type": "object", "properties": {}}
        return schema


class SwaigDefaults(SwmlModel):
    web_hook_url: str | None = None
    web_hook_auth_user: str | None = None
    web_hook_auth_password: str | None = Field(
        default=None,
        validation_alias=AliasChoices("web_hook_auth_password", "web_hook_auth_pass"),
    )


class Include(SwmlModel):
    """Remote function signatures fetched with SignalWire's get_signature request."""

    url: str
    functions: list[str] = Field(default_factory=list)
    user: str | None = None
    password: str | None = Field(default=None, validation_alias=AliasChoices("pass", "password"))
    meta_data: dict[str, Any] | None = None


class Swaig(SwmlModel):
    defaults: SwaigDefaults = Field(default_factory=SwaigDefaults)
    native_functions: list[str] = Field(default_factory=list)
    includes: list[Include] = Field(default_factory=list)
    functions: list[Function] = Field(default_factory=list)
    internal_fillers: dict[str, Any] | None = None


# ---------------------------------------------------------------- the rest of the ai verb


class Language(SwmlModel):
    name: str = "English"
    code: str = "en-US"
    voice: str | None = None
    engine: str | None = None
    fillers: list[str] = Field(default_factory=list)
    speech_fillers: list[str] = Field(default_factory=list)
    function_fillers: list[str] = Field(default_factory=list)


class Pronounce(SwmlModel):
    replace: str
    with_: str = Field(validation_alias=AliasChoices("with", "with_"), serialization_alias="with")
    ignore_case: FlexBool = True


class FunctionMapEntry(SwmlModel):
    """IMS LlmConfig.FunctionMap entry: built-in `Function` exposed under the model's `MatchFunction`."""

    Function: Literal["hangup", "transfer"]
    MatchFunction: str


class Params(SwmlModel):
    """`ai.params`. SignalWire's many params are kept as extras; the ones callgate acts on are typed.

    Times follow SignalWire: milliseconds, except `hard_stop_time` (a duration such as "30m").
    """

    ai_model: str | None = None
    llm_base_url: str | None = None
    app_name: str | None = None
    local_tz: str | None = None
    wait_for_user: FlexBool = False
    static_greeting: str | None = None
    text_commands: FlexBool = True
    function_map: list[FunctionMapEntry] = Field(default_factory=list)
    end_call_phrases: list[str] = Field(default_factory=list)
    attention_timeout: FlexInt | None = None
    attention_timeout_prompt: str | None = None
    inactivity_timeout: FlexInt | None = None
    inactivity_goodbye: str | None = None
    hard_stop_time: str | None = None
    hard_stop_prompt: str | None = None
    swaig_allow_swml: FlexBool = True
    swaig_allow_settings: FlexBool = True
    swaig_set_global_data: FlexBool = True  # false: set/unset_global_data actions are refused
    persist_global_data: FlexBool = True  # global_data carries over to the call's next AI session
    swaig_post_conversation: FlexBool = False
    swaig_allow_private_urls: FlexBool = False
    transfer_allow: list[str] | None = None
    # Barge-in (SignalWire): `false`/"" off; true, "complete", "partial", "complete,partial" on.
    enable_barge: bool | str | None = None
    barge_min_words: FlexInt | None = None
    static_greeting_no_barge: FlexBool = False
    # callgate: where SWML `send_sms` is POSTed (the verb's own fields as JSON); unset → recorded as skipped.
    sms_webhook_url: str | None = None
    # callgate: ms waited after the last audio frame has played before BYE / REFER / hang-up (DESIGN §8).
    hangup_delay_ms: FlexInt | None = None
    # Long calls and memory across calls (SignalWire's names; max_history_messages is callgate's alias).
    conversation_id: str | None = None
    save_conversation: FlexBool = False
    conversation_sliding_window: FlexInt | None = None
    max_history_messages: FlexInt | None = None
    # Honoured SignalWire params (docs/signalwire-parameters.md).
    conscience: str | None = None
    convo: list[dict[str, Any]] = Field(default_factory=list)
    initial_sleep_ms: FlexInt | None = None
    background_file: str | None = None
    background_file_loops: FlexInt | None = None
    max_response_tokens: FlexInt | None = None
    # callgate (DESIGN §7): a model reply with nothing speakable for this long (ms), or not finished
    # after this long, is abandoned for the spoken fallback; 0 switches the bound off.
    reply_speechless_timeout: FlexInt | None = None
    reply_timeout: FlexInt | None = None

    @field_validator("conversation_id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("conversation_sliding_window", "max_history_messages", "max_response_tokens")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("must be 1 or more")
        return value

    @field_validator("initial_sleep_ms")
    @classmethod
    def _sleep_ms(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 300_000:
            raise ValueError("must be 0 to 300000 milliseconds")
        return value

    @field_validator("convo")
    @classmethod
    def _convo(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, message in enumerate(value):
            if message.get("role") not in ("user", "assistant", "system") or not isinstance(
                message.get("content"), str
            ):
                raise ValueError(f"convo[{index}] needs role user/assistant/system and content text")
        return value

    @property
    def history_window(self) -> int | None:
        return self.conversation_sliding_window or self.max_history_messages

    @field_validator("hard_stop_time", mode="before")
    @classmethod
    def _duration_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("hard_stop_time")
    @classmethod
    def _valid_duration(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_hard_stop(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a duration (e.g. '30m', '1h30m', '90s', 'HH:MM:SS')"
                ) from None
        return value

    @field_validator("attention_timeout", "inactivity_timeout", "reply_speechless_timeout", "reply_timeout")
    @classmethod
    def _milliseconds(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("must be a number of milliseconds, 0 or more (0 switches it off)")
        return value

    @field_validator("end_call_phrases", "transfer_allow", mode="before")
    @classmethod
    def _string_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class AI(SwmlModel):
    """The SWML `ai` verb."""

    prompt: Prompt = Field(default_factory=Prompt)
    post_prompt: PostPrompt | None = None
    post_prompt_url: str | None = None
    post_prompt_auth_user: str | None = None
    post_prompt_auth_password: str | None = Field(
        default=None,
        validation_alias=AliasChoices("post_prompt_auth_password", "post_prompt_auth_pass"),
    )
    params: Params = Field(default_factory=Params)
    SWAIG: Swaig = Field(default_factory=Swaig)
    hints: list[Any] = Field(default_factory=list)
    languages: list[Language] = Field(default_factory=list)
    pronounce: list[Pronounce] = Field(default_factory=list)
    global_data: dict[str, Any] = Field(default_factory=dict)


# ---------------------------------------------------------------- the document


class Verb(BaseModel):
    """One SWML verb in a section: its name and its (raw, or for `ai` typed) arguments."""

    name: str
    args: Any = None
    label: str | None = None
    path: str = ""


class Document(BaseModel):
    """A SWML document: `version` + `sections` of verbs. `ai` verbs are parsed into `AI` models."""

    version: str = "1.0.0"
    sections: dict[str, list[Verb]]
    source: str | None = None

    def find_ai(self) -> AI | None:
        """The first `ai` verb, searching `main` first, then the other sections in order."""
        order = ["main", *[name for name in self.sections if name != "main"]]
        for name in order:
            for verb in self.sections.get(name, []):
                if verb.name == "ai" and isinstance(verb.args, AI):
                    return verb.args
        return None
