"""How the SIP endpoint is set up (`callgate serve --sip HOST:PORT --sip-proxy URI`)."""

from __future__ import annotations

from dataclasses import dataclass

from callgate.channels.sip.message import SipParseError, SipUri


@dataclass(frozen=True)
class ProxySettings:
    """`sip:user:pass@host:port`: where outbound INVITEs go and the credentials for digest auth."""

    host: str
    port: int
    username: str
    password: str

    @classmethod
    def parse(cls, uri: str) -> ProxySettings:
        text = uri if uri.lower().startswith(("sip:", "sips:")) else f"sip:{uri}"
        try:
            parsed = SipUri.parse(text)
        except SipParseError as error:
            raise ValueError(f"--sip-proxy must look like sip:user:pass@host:port, not {uri!r}") from error
        if not parsed.host:
            raise ValueError(f"--sip-proxy has no host: {uri!r}")
        return cls(parsed.host, parsed.port or 5060, parsed.user, parsed.password)


@dataclass(frozen=True)
class SipConfig:
    host: str = "127.0.0.1"
    port: int = 5060  # 0 picks a free port (tests)
    proxy: str | None = None  # outbound proxy / trunk, "sip:user:pass@host:port"
    media_timeout: float = 30.0  # seconds without RTP from an active peer → MediaTimeout, hang up
    hangup_delay_ms: int = 200  # the far end's jitter allowance before BYE / REFER
    public_host: str | None = None  # the address written in Contact/Via/SDP when not `host`
    t1: float = 0.5  # RFC 3261 T1 (retransmission base)
    t2: float = 4.0
    refer_timeout: float = 30.0  # how long a REFER may go without a final NOTIFY → `timeout`
    user_agent: str = "callgate"

    @property
    def advertised_host(self) -> str:
        if self.public_host:
            return self.public_host
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    def proxy_settings(self) -> ProxySettings | None:
        return ProxySettings.parse(self.proxy) if self.proxy else None
