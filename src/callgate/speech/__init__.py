"""Speech for real calls: G.711 codecs, resampling, VAD, speech-to-text and text-to-speech.

Channels (SIP, Twilio) speak through a `Synthesizer` and hear through a `Listener` built on a
`Recognizer` (`speech.base`); nothing here knows about calls, agents or documents.
"""
