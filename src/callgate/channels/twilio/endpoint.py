"""The Twilio channel's front door: the webhooks, the Media Stream websocket, the live legs.

    endpoint = TwilioEndpoint(config, clock=SystemClock(), on_call=handler, prepare_leg=attach_speech)
    app = Starlette(routes=[*other_routes, *endpoint.routes()])   # or callgate.server's build_app
    endpoint.switch            # dial() / bridge() for warm transfers
    endpoint.draining = True   # new calls are rejected (busy) from now on
    await endpoint.stop()      # hangs up the remaining calls

Routes (all webhooks must carry a valid `X-Twilio-Signature`, else 403 and a log line):
- POST /twilio/voice — a call to the number: answers `<Connect><Stream>` with From, To, CallSid and
  CallerName as `<Parameter>`s, plus a one-time stream token so only the stream Twilio opens for
  this call is accepted on the websocket;
- POST /twilio/status — status callbacks: a call completed on Twilio's side ends ours; an outbound
  leg's busy / no-answer / failed ends its dial;
- POST /twilio/dial-status/{token}, /twilio/dial-action/{token} — a blind transfer's progress;
- WS /twilio/stream — the Media Streams.

`on_call(call)` runs for each inbound call once its stream is up (the handler answers and owns the
call; an exception in it is logged and the call hung up). `prepare_leg(call)` (plain or async) runs
for every new leg, inbound or dialled, before its stream starts: attach speech there
(`call.use_speech`). Each leg's `switch` is this endpoint's, so its transfers stay on Twilio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from callgate.channels.legs import LegState
from callgate.channels.twilio import media, twiml
from callgate.channels.twilio.call import TwilioCall, TwilioServices
from callgate.channels.twilio.callbacks import CallbackRegistry
from callgate.channels.twilio.config import (
    DIAL_ACTION_PATH,
    DIAL_STATUS_PATH,
    STATUS_PATH,
    STREAM_PATH,
    VOICE_PATH,
    TwilioConfig,
)
from callgate.channels.twilio.rest import TwilioRest
from callgate.channels.twilio.signature import SignatureCheck
from callgate.channels.twilio.switch import TwilioSwitch
from callgate.telephony.clock import Clock, Deadline, SystemClock, within

log = logging.getLogger(__name__)

OnCall = Callable[[TwilioCall], Awaitable[None]]
PrepareLeg = Callable[[TwilioCall], Awaitable[None] | None]
TOKEN_PARAMETER = "callgate_token"
XML = "application/xml"


class _WebSocketLink:
    def __init__(self, websocket: WebSocket, stream_sid: str) -> None:
        self.websocket = websocket
        self.stream_sid = stream_sid
        self._lock = asyncio.Lock()  # one writer at a time: frames of two senders never interleave

    async def send(self, text: str) -> None:
        async with self._lock:
            await self.websocket.send_text(text)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close()


class TwilioEndpoint:
    def __init__(
        self,
        config: TwilioConfig,
        *,
        clock: Clock | None = None,
        on_call: OnCall,
        prepare_leg: PrepareLeg | None = None,
        http: httpx.AsyncClient | None = None,
        draining: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.on_call = on_call
        self.prepare_leg = prepare_leg
        self.rest = TwilioRest(config, http)
        self.signatures = SignatureCheck(config)
        self.callbacks = CallbackRegistry()
        self.services = TwilioServices(
            config=config,
            rest=self.rest,
            clock=self.clock,
            callbacks=self.callbacks,
            stream_twiml=self.stream_twiml,
        )
        self.switch = TwilioSwitch(self.services, self._register)
        self.calls: dict[str, TwilioCall] = {}
        self._stream_tokens: dict[str, TwilioCall] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self.draining = False
        self._draining = draining  # the process's own drain flag, if it has one
        self.rejected_requests = 0  # forged or unsigned webhooks and streams

    @property
    def active_calls(self) -> list[TwilioCall]:
        """Legs callgate still carries (a leg moved into a conference lives on at Twilio, not here)."""
        return [call for call in self.calls.values() if call.state not in (LegState.ENDED, LegState.BRIDGED)]

    def routes(self) -> list[BaseRoute]:
        return [
            Route(VOICE_PATH, self._voice, methods=["POST"]),
            Route(STATUS_PATH, self._status, methods=["POST"]),
            Route(DIAL_STATUS_PATH + "/{token}", self._dial_status, methods=["POST"]),
            Route(DIAL_ACTION_PATH + "/{token}", self._dial_action, methods=["POST"]),
            WebSocketRoute(STREAM_PATH, self._stream),
        ]

    async def stop(self) -> None:
        """Hang up what is still up, stop the handlers, close the REST client."""
        for call in self.active_calls:
            with contextlib.suppress(Exception):
                await call.hangup("shutdown")
        for task in list(self._handlers):
            task.cancel()
        # Their cancellations are results here (one may be this very task); ours still propagates.
        await asyncio.gather(
            *(t for t in list(self._handlers) if t is not asyncio.current_task()), return_exceptions=True
        )
        await self.rest.aclose()

    # ------------------------------------------------------------ legs and stream tokens

    async def _register(self, call: TwilioCall) -> None:
        self.calls[call.call_id] = call
        call.switch = self.switch  # a Twilio call's transfers and dials stay on Twilio
        if self.prepare_leg is not None:
            prepared = self.prepare_leg(call)
            if prepared is not None:
                await prepared

    def stream_twiml(self, call: TwilioCall) -> str:
        """`<Connect><Stream>` for this leg, with its facts and a fresh one-time stream token."""
        token = secrets.token_urlsafe(18)
        self._stream_tokens[token] = call
        parameters = {
            "From": call.from_number,
            "To": call.to_number,
            "CallSid": call.call_id,
            "CallerName": call.caller_name,
            TOKEN_PARAMETER: token,
        }
        return twiml.connect_stream(self.config.stream_url, {k: v for k, v in parameters.items() if v})

    # ------------------------------------------------------------ webhooks

    async def _signed_form(self, request: Request) -> dict[str, str] | None:
        # Twilio posts application/x-www-form-urlencoded (no multipart): parsed here, no extra library.
        params = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        signature = request.headers.get("x-twilio-signature")
        if self.signatures.valid(request.url.path, request.url.query, params, signature):
            return params
        self.rejected_requests += 1
        client = request.client.host if request.client else "?"
        log.warning(
            "twilio: refused %s %s from %s: %s X-Twilio-Signature",
            request.method,
            request.url.path,
            client,
            "invalid" if signature else "no",
        )
        return None

    @staticmethod
    def _forbidden() -> Response:
        return PlainTextResponse("invalid Twilio signature\n", status_code=403)

    async def _voice(self, request: Request) -> Response:
        form = await self._signed_form(request)
        if form is None:
            return self._forbidden()
        sid = form.get("CallSid", "")
        if not sid:
            return PlainTextResponse("CallSid missing\n", status_code=400)
        if self.draining or (self._draining is not None and self._draining()):
            log.info("twilio: draining, call %s rejected", sid)
            return Response(
                '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>',
                media_type=XML,
            )
        call = self.calls.get(sid)
        if call is None:
            call = TwilioCall(
                self.services,
                call_sid=sid,
                from_number=form.get("From", ""),
                to_number=form.get("To", ""),
                caller_name=form.get("CallerName", ""),
            )
            await self._register(call)
            log.info("twilio: call %s from %s to %s", sid, call.from_number, call.to_number)
            watchdog = asyncio.create_task(self._stream_watchdog(call))
            self._handlers.add(watchdog)
            watchdog.add_done_callback(self._handlers.discard)
        return Response(self.stream_twiml(call), media_type=XML)

    async def _stream_watchdog(self, call: TwilioCall) -> None:
        """A call whose stream never connects is dropped (Twilio could not reach our websocket)."""
        try:
            await within(self.clock, self.config.stream_timeout, call.wait_linked())
        except Deadline:
            log.warning(
                "twilio: call %s: no media stream within %gs; hanging up",
                call.call_id,
                self.config.stream_timeout,
            )
            await call.hangup("no-media-stream")
            self.calls.pop(call.call_id, None)

    async def _status(self, request: Request) -> Response:
        form = await self._signed_form(request)
        if form is None:
            return self._forbidden()
        call = self.calls.get(form.get("CallSid", ""))
        status = form.get("CallStatus", "")
        if call is not None and status:
            log.info("twilio: call %s status %s", call.call_id, status)
            call.status_changed(status)
            if call.ended and status == "completed":
                self.calls.pop(call.call_id, None)
        return Response(status_code=204)

    async def _dial_status(self, request: Request) -> Response:
        form = await self._signed_form(request)
        if form is None:
            return self._forbidden()
        self.callbacks.deliver(request.path_params["token"], "status", form)
        return Response(status_code=204)

    async def _dial_action(self, request: Request) -> Response:
        form = await self._signed_form(request)
        if form is None:
            return self._forbidden()
        pending = self.callbacks.deliver(request.path_params["token"], "action", form)
        if pending is None or pending.answer is None:
            return Response(twiml.hangup(), media_type=XML)  # nobody waits for this call any more
        return Response(pending.answer(form), media_type=XML)

    # ------------------------------------------------------------ the Media Stream websocket

    async def _stream(self, websocket: WebSocket) -> None:
        await websocket.accept()
        start = await self._read_start(websocket)
        if start is None:
            return
        call = self._stream_tokens.pop(start.parameters.get(TOKEN_PARAMETER, ""), None)
        if call is None or (call.call_id and call.call_id != start.call_sid) or call.ended:
            self.rejected_requests += 1
            log.warning("twilio: refused a media stream for %s: unknown or used stream token", start.call_sid)
            await websocket.close(code=1008)
            return
        if start.encoding != "audio/x-mulaw" or start.sample_rate != 8000:
            log.warning(
                "twilio: stream %s is %s at %d Hz; expected μ-law 8 kHz",
                start.stream_sid,
                start.encoding,
                start.sample_rate,
            )
        link = _WebSocketLink(websocket, start.stream_sid)
        first = not call.linked and call.direction == "inbound" and call.state is LegState.RINGING
        call.attach(link)
        if first:
            self._dispatch(call)
        cause = "socket-closed"
        try:
            while True:
                try:
                    message = media.parse(await websocket.receive_text())
                except media.ProtocolError as exc:
                    log.warning("twilio: stream %s: %s (dropped)", start.stream_sid, exc)
                    continue
                if isinstance(message, media.Stop):
                    cause = "stop"
                    break
                if message is not None:
                    call.on_message(message)
        except (WebSocketDisconnect, RuntimeError):
            cause = "socket-closed"
        finally:
            call.stream_ended(link, cause)
        with contextlib.suppress(Exception):
            await websocket.close()

    async def _read_start(self, websocket: WebSocket) -> media.Start | None:
        try:
            while True:
                message = media.parse(await websocket.receive_text())
                if isinstance(message, media.Start):
                    return message
                if isinstance(message, media.Stop):
                    return None
        except (WebSocketDisconnect, RuntimeError):
            return None
        except media.ProtocolError as exc:
            log.warning("twilio: refused a media stream: %s", exc)
            await websocket.close(code=1003)
            return None

    def _dispatch(self, call: TwilioCall) -> None:
        task = asyncio.create_task(self._supervise(call), name=f"twilio-call-{call.call_id}")
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _supervise(self, call: TwilioCall) -> None:
        try:
            await self.on_call(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("twilio: the handler of call %s failed; hanging up", call.call_id)
            with contextlib.suppress(Exception):
                await call.hangup("handler-error")
        finally:
            if call.ended:
                self.calls.pop(call.call_id, None)
