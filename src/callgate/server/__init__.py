"""The HTTP side of `callgate serve`: one starlette app (DESIGN §8) that the pieces add routes to."""

from callgate.server.app import RouteProvider, ServerContext, build_app

__all__ = ["RouteProvider", "ServerContext", "build_app"]
