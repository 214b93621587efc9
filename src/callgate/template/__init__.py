"""The `${…}` template language of SignalWire SWAIG / data_map documents.

Pure: it knows nothing of SWAIG or calls. It expands against a context mapping the caller
builds, e.g. ``{"args": {...}, "input": {"args": {...}}, "meta_data": {...}, "global_data":
{...}, "caller_id_num": "...", "call_id": "...", "array": [...], "this": {...}, <webhook
response's top-level keys>}``.

Syntax
- ``${path}`` and ``%{path}`` are the same placeholder; ``%{…}`` is the spelling SignalWire
  uses in webhook ``url`` / ``params`` (it survives SWML's own ``${…}`` substitution).
- A path is dotted keys with ``[n]`` indexes: ``${array[0].joke}``, ``${Records[0].secret}``,
  ``${input.args.target}``, ``${this.name}``. ``array.0`` also indexes a list. Keys match
  exactly, else without regard to case. Negative or out-of-range indexes, a step into a
  non-container, an empty path (``${}``) — anything missing — expands to "".
- Placeholders nest, innermost first: ``${meta_data.table.${lc:args.target}}``.
- Modifiers before the path: ``lc:`` (lower case), ``uc:`` (upper case), ``enc:`` or
  ``enc:url:`` (percent-encoding, RFC 3986: space → ``%20``, ``/`` → ``%2F``). Whatever order
  they are written in, the case change applies first and encoding last, so ``${lc:enc:x}`` ==
  ``${enc:lc:x}``; with both ``lc:`` and ``uc:`` the leftmost wins. Any other ``name:`` is
  part of the path.
- Non-string values render as JSON: ``true``/``false``, ``42``, ``1.5``, compact objects and
  lists; None renders as "".
- ``expand_url`` (webhook URLs) also percent-encodes the model's arguments (``args.…``,
  ``input.args.…``) without ``enc:``, so an argument cannot change a URL's path or query.
- Functions (SignalWire's ``@{name arguments}``, see ``functions``): ``@{strftime_tz <zone> <format>}``,
  ``@{fmt_ph <format>[:sep:<sep>] <number>}``, ``@{expr <arithmetic>}``, ``@{echo <text>}``,
  ``@{separate <text>}``, ``@{sleep <seconds>}``. Nested ``${…}`` expand first. The time and the
  sleep sink come from a ``TemplateEnv`` the caller puts in the context (``with_env``); without one
  ``strftime_tz`` is "" and ``sleep`` waits for nothing. An unknown name stays as written.
- An unclosed ``${``, a lone ``$`` or ``}`` stay as written. Values are inserted once, never
  expanded again. Nesting deeper than 64 levels is kept as text.
"""

from callgate.template.expand import expand, expand_url, expand_value, has_placeholders
from callgate.template.functions import TemplateEnv, with_env
from callgate.template.paths import lookup
from callgate.template.render import to_text

__all__ = [
    "TemplateEnv",
    "expand",
    "expand_url",
    "expand_value",
    "has_placeholders",
    "lookup",
    "to_text",
    "with_env",
]
