"""The browser UI (`facedouble ui`): a FastAPI app over the same stage functions the CLI calls.

app.py builds the app, jobs.py runs one stage at a time in the background, security.py holds the token,
host/origin checks and path confinement. The front end in static/ is plain JavaScript with no build step.
"""

from .app import create_app

__all__ = ["create_app"]
