"""The browser UI's app under FastAPI's test client, with the token cookie set and a stand-in merge model."""

from __future__ import annotations

from support.swappers import identity_factory

TOKEN = "test-token-0123456789"


def make_client(ws, **kw):
    """A TestClient of the app on workspace `ws` (extra keyword arguments go to `create_app`)."""
    from fastapi.testclient import TestClient

    from facedouble.web.app import create_app

    app = create_app(ws.root, token=TOKEN, hosts=("testserver",), swapper_factory=kw.pop("swapper_factory", identity_factory), **kw)
    client = TestClient(app)
    client.cookies.set("facedouble_token", TOKEN)
    return client
