"""`callgate calls list|show|export|reports|deliver`: look at call records, export them, see and send
the post-call reports.

The store is `--db`, else `CALLGATE_DB`, else `~/.local/share/callgate/calls.db`. Every command
first imports the records spooled while the store was unusable (`records.spool`); a store that
cannot be used (locked, read-only, corrupt, unreachable) is said in one line (its password
masked), exit status 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from callgate.durations import parse_duration
from callgate.llm.commands import spoken_text
from callgate.records.model import CallRecord
from callgate.records.outbox import Attempt, DeliveryWorker, RetryPolicy
from callgate.records.spool import Spool, spool_dir
from callgate.records.store import DELIVERED, FAILED, PENDING, Report, Store, StoreError, open_store
from callgate.redact import redact, redact_data
from callgate.runtime.models import ModelPool
from callgate.runtime.post_jobs import PostJobs
from callgate.swaig.guarded_transport import guarded_client
from callgate.telephony.clock import SystemClock

calls_app = typer.Typer(
    name="calls", help="Call records: list, show, export; deliver pending reports.", no_args_is_help=True
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Store: a SQLite path or postgresql:// URL (default: $CALLGATE_DB or "
        "~/.local/share/callgate/calls.db).",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(calls_app, name="calls")


@contextmanager
def _open(db: str | None) -> Iterator[Store]:
    """The store, with what the spool held imported; a store error anywhere in the command is
    reported in one line (exit 2), never as a traceback."""
    try:
        store = open_store(db)
    except StoreError as exc:
        _store_error(exc)
    try:
        try:
            Spool(spool_dir(db, dict(os.environ))).replay(store)
        except StoreError as exc:  # the command may still read what the store has
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"[yellow]warning[/] spooled calls not imported yet: {escape(redact(str(exc)))}"
            )
        yield store
    except StoreError as exc:
        _store_error(exc)
    finally:
        store.close()


def _store_error(exc: StoreError) -> NoReturn:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error[/] {escape(redact(str(exc)))}")
    raise typer.Exit(2) from exc


def parse_when(value: str, now: float) -> int:
    """An ISO date/time (UTC unless it says otherwise) or a span back from now (`2h`, `3d`, `90m`)
    as epoch microseconds."""
    text = value.strip()
    days = re.fullmatch(r"(\d+(?:\.\d+)?)\s*d", text, re.IGNORECASE)
    try:
        if days:
            return round((now - float(days.group(1)) * 86400) * 1_000_000)
        return round((now - parse_duration(text)) * 1_000_000)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r}: use an ISO date/time (2026-01-31T14:00) or a span (2h, 3d)"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1_000_000)


def _when(us: int) -> str:
    if not us:
        return "-"
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")


_STATUS_STYLE = {DELIVERED: "green", PENDING: "yellow", FAILED: "bold red"}


def _status(status: str | None) -> str:
    if status is None:
        return "[dim]-[/]"
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


@calls_app.command("list")
def list_calls(
    db: DbOption = None,
    since: Annotated[
        str | None, typer.Option(help="Calls started at/after this (ISO time or 2h, 3d).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Calls started before this (ISO time or 2h, 3d).")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Ended reason, e.g. customer-ended-call.")
    ] = None,
    number: Annotated[str | None, typer.Option(help="Caller or called number contains this.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many calls, newest first.")] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List calls, newest first, with how each ended and whether its report went out."""
    now = SystemClock().time()
    since_us = parse_when(since, now) if since else None
    until_us = parse_when(until, now) if until else None
    with _open(db) as store:
        rows = store.list_calls(
            since_us=since_us, until_us=until_us, ended_reason=reason, number=number, limit=limit
        )
    if json_output:
        typer.echo(json.dumps([row.__dict__ for row in rows], indent=2))
        return
    console = Console(highlight=False)
    if not rows:
        console.print("[dim]no calls[/]")
        return
    table = Table(box=None, header_style="bold")
    for column in ("call", "started (UTC)", "secs", "from", "to", "ended", "report"):
        table.add_column(column)
    for row in rows:
        secs = (
            f"{(row.ended_us - row.started_us) / 1_000_000:.1f}" if row.ended_us and row.started_us else "-"
        )
        table.add_row(
            row.call_id[:8],
            _when(row.started_us),
            secs,
            escape(row.caller),
            escape(row.callee),
            escape(row.ended_reason or "-"),
            _status(row.report_status),
        )
    console.print(table)


@calls_app.command("show")
def show(
    call_id: Annotated[str, typer.Argument(help="A call id (or a unique prefix of one).")],
    db: DbOption = None,
) -> None:
    """What happened on a call: who, how it ended, transcript, functions, report and timeline."""
    with _open(db) as store:
        record = store.get_call(call_id)
        if record is None:
            Console(stderr=True).print(f"[red]no call[/] {escape(call_id)} (or the prefix is not unique)")
            raise typer.Exit(1)
        reports = store.reports(call_id=record.call_id)
    Console(highlight=False).print(render_call(record, reports))


def shown_record(record: CallRecord) -> CallRecord:
    """The record as `show` and `export` print it: every credential masked (`callgate.redact`);
    the transcript stays what the caller heard."""
    data = record.model_dump(mode="json")
    kept = {key: data.pop(key) for key in ("call_log", "raw_call_log")}
    return CallRecord.model_validate({**redact_data(data), **kept})


def render_call(record: CallRecord, reports: list[Report]) -> Group:
    """The `show` view as rich renderables (tests render it to text)."""
    record = shown_record(record)
    parts: list[Any] = [_summary(record, reports), _transcript(record)]
    if record.swaig_log:
        parts.append(_functions(record))
    if record.transfers:
        table = Table(title="transfers", title_justify="left", box=None, header_style="bold")
        for column in ("to", "mode", "result", "reason"):
            table.add_column(column)
        for t in record.transfers:
            style = "green" if t.result == "completed" else "red"
            table.add_row(escape(t.to), t.mode, f"[{style}]{t.result}[/]", escape(t.reason or ""))
        parts.append(table)
    if record.post_prompt_data is not None:
        data = record.post_prompt_data
        body = Text(data.raw or "(empty answer)")
        if data.parsed:
            body.append("\nparsed: ", style="bold")
            body.append(json.dumps(data.parsed, ensure_ascii=False))
        parts.append(Panel(body, title="post_prompt answer", title_align="left"))
    parts.append(_timeline(record))
    return Group(*parts)


def _summary(record: CallRecord, reports: list[Report]) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    caller = f"{record.caller_id_num}" + (f" ({record.caller_id_name})" if record.caller_id_name else "")
    grid.add_row("call", escape(record.call_id))
    grid.add_row("from → to", escape(f"{caller} → {record.to_number or '-'}"))
    grid.add_row(
        "when",
        f"{_when(record.call_start_date)} UTC, {record.duration_seconds():.1f} s"
        + ("" if record.call_answer_date else " (never answered)"),
    )
    ended = record.ended_reason or "-"
    grid.add_row("ended", escape(ended + (f" by {record.ended_by}" if record.ended_by else "")))
    grid.add_row("tokens", f"{record.total_input_tokens} in / {record.total_output_tokens} out")
    if record.times:
        answer = sum(t.answer_time for t in record.times) / len(record.times)
        grid.add_row("replies", f"{len(record.times)}, {answer:.2f} s average")
    for report in reports:
        tries = f"attempt {report.attempts}/{report.max_attempts}"
        line = f"{_status(report.status)} → {escape(redact(report.url))} ({tries})"
        if report.last_error and report.status != DELIVERED:
            line += f" [red]{escape(redact(report.last_error))}[/]"
        grid.add_row("report", line)
    if not reports:
        grid.add_row("report", "[dim]none (no post_prompt_url)[/]")
    return Panel(grid, title="call", title_align="left")


def _transcript(record: CallRecord) -> Panel:
    """The conversation; from the raw log when there is one (it has times and survives context
    switches), else from call_log."""
    text = Text()
    messages = record.raw_call_log or record.call_log
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role == "system":
            continue
        stamp = message.get("timestamp")
        if isinstance(stamp, int | float) and record.call_start_date and role in ("user", "assistant"):
            text.append(f"{max(0.0, (stamp - record.call_start_date) / 1_000_000):6.1f}s ", style="dim")
        if role == "user" and content:
            text.append("caller  ", style="bold cyan")
            text.append(f"{content}\n")
        elif role == "assistant":
            heard = spoken_text(str(content)) if content else ""
            if heard:  # what the caller heard: no command markup (the raw reply is in the timeline)
                text.append("agent   ", style="bold green")
                text.append(f"{heard}\n")
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                text.append("  ↳ ", style="dim")
                text.append(f"{function.get('name')}({function.get('arguments', '')})\n", style="magenta")
        elif role == "tool" and content:
            text.append("  ← ", style="dim")
            text.append(f"{content}\n", style="dim")
    if not text:
        text.append("(nothing was said)", style="dim")
    text.rstrip()
    return Panel(text, title="transcript", title_align="left")


def _functions(record: CallRecord) -> Table:
    table = Table(title="functions", title_justify="left", box=None, header_style="bold")
    for column in ("function", "arguments", "url", "response"):
        table.add_column(column, overflow="fold")
    for entry in record.swaig_log:
        response = entry.get("post_response")
        shown = response.get("response") if isinstance(response, dict) else response
        table.add_row(
            escape(str(entry.get("command_name", ""))),
            escape(str(entry.get("command_arg", ""))),
            escape(str(entry.get("url", "") or "")),
            escape(str(entry.get("error") or shown or "")),
        )
    return table


def _timeline(record: CallRecord) -> Table:
    table = Table(title="timeline", title_justify="left", box=None, header_style="bold")
    table.add_column("t", justify="right")
    table.add_column("leg")
    table.add_column("event")
    table.add_column("details", overflow="fold")
    for event in record.timeline:
        details = ", ".join(f"{k}={v!r}" for k, v in event.data.items())
        table.add_row(f"{event.t:.2f}s", event.leg, escape(event.kind), escape(details))
    return table


@calls_app.command("export")
def export(
    call_ids: Annotated[
        list[str] | None, typer.Argument(help="Calls to export (default: those the filters pick).")
    ] = None,
    db: DbOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Calls started at/after this (ISO time or 2h, 3d).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Calls started before this.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Ended reason.")] = None,
    number: Annotated[str | None, typer.Option(help="Caller or called number contains this.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 1000,
) -> None:
    """Write call records (with their reports' delivery state, never credentials) as JSON."""
    now = SystemClock().time()
    with _open(db) as store:
        if call_ids:
            records = []
            for call_id in call_ids:
                record = store.get_call(call_id)
                if record is None:
                    Console(stderr=True).print(f"[red]no call[/] {escape(call_id)}")
                    raise typer.Exit(1)
                records.append(record)
        else:
            rows = store.list_calls(
                since_us=parse_when(since, now) if since else None,
                until_us=parse_when(until, now) if until else None,
                ended_reason=reason,
                number=number,
                limit=limit,
            )
            records = [r for r in (store.get_call(row.call_id) for row in rows) if r is not None]
        out = [
            {
                **shown_record(record).model_dump(mode="json"),
                "reports": [report_json(r) for r in store.reports(record.call_id)],
            }
            for record in records
        ]
    text = json.dumps(out, indent=2, ensure_ascii=False)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        Console(stderr=True).print(f"wrote {len(out)} call(s) to {escape(str(output))}")


def report_json(report: Report) -> dict[str, Any]:
    return {
        "idempotency_key": report.idempotency_key,
        "url": redact(report.url),
        "status": report.status,
        "attempts": report.attempts,
        "max_attempts": report.max_attempts,
        "last_status": report.last_status,
        "last_error": redact(report.last_error) if report.last_error else None,
        "delivered_at": report.delivered_at,
    }


@calls_app.command("reports")
def reports(
    db: DbOption = None,
    status: Annotated[
        str | None, typer.Option(help="Only reports in this state: pending, delivered or failed.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The post-call reports in the outbox: where each goes, its state, attempts and last error."""
    with _open(db) as store:
        rows = store.reports(status=status)
    if json_output:
        typer.echo(json.dumps([{"call_id": r.call_id, **report_json(r)} for r in rows], indent=2))
        return
    console = Console(highlight=False)
    if not rows:
        console.print("[dim]no reports[/]")
        return
    table = Table(box=None, header_style="bold")
    for column in ("call", "state", "attempts", "url", "last error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.call_id[:8],
            _status(row.status),
            f"{row.attempts}/{row.max_attempts}",
            escape(redact(row.url)),
            escape(redact(row.last_error)) if row.last_error and row.status != DELIVERED else "",
        )
    console.print(table)


@calls_app.command("deliver")
def deliver(
    db: DbOption = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Keep going (backoff included) until nothing is pending.")
    ] = True,
    lease: Annotated[
        float, typer.Option(min=0.1, help="Seconds other workers leave a report being sent alone.")
    ] = 60.0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per delivery attempt.")] = 15.0,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Queue failed reports again first.")
    ] = False,
) -> None:
    """Send pending post-call reports (after a crash or a restart; --retry-failed for given-up ones).
    Post-call work a crashed process left (its post_prompt) is finished first."""
    clock = SystemClock()
    console = Console(highlight=False, stderr=True)
    with _open(db) as store:
        if retry_failed:
            console.print(f"requeued {store.retry_failed(clock.time())} failed report(s)")
        policy = RetryPolicy(lease=lease, timeout=timeout)
        asyncio.run(_deliver(store, clock, policy, wait, console))
        counts = {s: len(store.reports(status=s)) for s in (DELIVERED, PENDING, FAILED)}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))


async def _deliver(
    store: Store, clock: SystemClock, policy: RetryPolicy, wait: bool, console: Console
) -> None:
    def progress(attempt: Attempt) -> None:
        # Backoff can take minutes: say what happened and what comes next, attempt by attempt.
        report = attempt.report
        what = "delivered" if attempt.ok else (attempt.error or f"HTTP {attempt.status}")
        if attempt.ok:
            after = ""
        elif attempt.gave_up:
            after = " — given up (failed)"
        else:
            after = f" — next try in {max(0.0, (attempt.retry_at or clock.time()) - clock.time()):.0f} s"
        console.print(f"{report.call_id[:8]} → {escape(redact(report.url))}: {escape(redact(what))}{after}")

    env = dict(os.environ)
    models = ModelPool(env, clock)  # a resumed job asks the post_prompt model as `serve` would
    jobs = PostJobs(store, clock, models.model_for, env, policy)
    # Reports go to document-chosen URLs: resolved, checked and pinned unless the row is exempt.
    try:
        async with guarded_client() as http:
            worker = DeliveryWorker(store, http, clock, policy, on_attempt=progress, jobs=jobs.run_due)
            if wait:
                # A report another process is sending is leased for its whole attempt: look again
                # every couple of seconds rather than sleeping out the lease once it is settled.
                await worker.run_until_settled(max_sleep=2.0)
            else:
                await worker.deliver_due()
    finally:
        await models.aclose()
