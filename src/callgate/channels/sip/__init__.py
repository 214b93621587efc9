"""The SIP channel: one UDP user agent per process answering and placing calls (DESIGN §8).

Why our own compact stack rather than aiosipua + aiortp (DESIGN §5): the defects listed there
(no ACK for a re-INVITE 2xx on inbound dialogs, no UDP retransmission of in-dialog requests, no
answer to bad SDP, no vanished-peer detection) all sit in the transaction and dialog layers, which
is most of what a user agent is. Patching around them would have meant owning those layers anyway,
behind someone else's object model. So the channel owns them, in small modules:

- `message`     SIP message parsing/serialising (400 for what cannot be parsed)
- `transaction` RFC 3261 UDP transactions: Timer A/E/B/F/G, response retransmission, 2xx until ACK
- `dialog`      dialog identifiers, CSeq and routing, with an explicit state machine
- `sdp`         offer/answer for PCMU/PCMA + telephone-event (488 for SDP we cannot use)
- `rtp`         RTP packets, continuous sequence/timestamps, RFC 4733 DTMF
- `media`       per-leg RTP sockets and the 20 ms pacer on the channel's clock
- `audio`       speech queue, playbacks (WAV/URL, resampled to 8 kHz), mixing
- `refer`       REFER/NOTIFY sipfrag → DESIGN §3 transfer outcomes
- `auth`        digest authentication for outbound INVITEs through `--sip-proxy`
- `call`        `SipCall`, the `telephony.base.Call` of one leg
- `endpoint`    `SipEndpoint` (routing, supervision of call handlers) and `SipSwitch` (dial, bridge)
"""

from callgate.channels.sip.call import SipCall
from callgate.channels.sip.config import SipConfig
from callgate.channels.sip.endpoint import SipEndpoint, SipSwitch

__all__ = ["SipCall", "SipConfig", "SipEndpoint", "SipSwitch"]
