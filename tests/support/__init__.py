"""Helpers shared by the tests (no tests and no fixtures here; the fixtures are in the conftest.py files).

Imported as `from support.media import decode`: tests/ is on sys.path (tests/conftest.py puts it there).
One module per kind of thing: media (frames of the sample videos), faces (dlib landmarks and aligned faces),
facesets (folders of real aligned faces for training and sorting), workspaces, models (tiny facedouble models),
swappers (stand-in models), marks (a stand-in for the provenance mark), files, network, client (the web app's
test client) and browser (Chromium for the UI tests).
"""
