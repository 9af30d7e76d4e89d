"""The browser UI (`facedouble ui`): a FastAPI app over the same stage functions the CLI calls.

app.py builds the app (the token, Host and Origin checks, the pages, the Workspace tab's stages and jobs) and
registers each tab's endpoints: faces.py (faceset browser, manual extraction), mask.py (XSeg labels), training.py
(training monitor), tuner.py (merge tuner), results.py (result, provenance, report, uploads), live.py (Live tab).
forms.py turns config classes into forms and forms into configs; http.py holds what the endpoints share;
jobs.py runs one stage at a time in the background; security.py holds the token, host/origin checks and path
confinement. The front end in static/ is plain JavaScript with no build step.
"""

from .app import create_app

__all__ = ["create_app"]
