"""The agent document: SWML loaded from YAML/JSON (file or URL) into typed models."""
