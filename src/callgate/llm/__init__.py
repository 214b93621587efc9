"""The model client: OpenAI-compatible streaming, tool-call assembly, IMS text commands, sentences."""
