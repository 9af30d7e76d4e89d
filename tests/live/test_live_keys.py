"""Keys in the terminal while `facedouble live` runs: the pure key -> settings change, a running session that
q stops (the output file closed, complete and marked), and a run without a terminal (no keys read, nothing
printed about them)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from facedouble.config import LiveConfig
from facedouble.live import LiveSession
from facedouble.live.keys import KEYS, key_action, key_help
from support.media import video_info
from support.models import tiny_untrained_model
from support.swappers import TintModel


def test_keys_change_settings_within_their_ranges():
    s = LiveConfig()          # opacity 100, erode 0, blur 50, face scale 0, morph 75, delay 0, rct, learned
    assert key_action("-", s).changes == {"opacity": 90}
    assert key_action("+", s).changes == {} and key_action("+", s).text == "opacity 100%"   # at its top already
    assert key_action("]", s).changes == {"erode": 10} and key_action("[", s).changes == {"erode": -10}
    assert key_action("}", s).changes == {"blur": 60} and key_action("{", s).changes == {"blur": 40}
    assert key_action(".", s).changes == {"face_scale": 5} and key_action(",", s).changes == {"face_scale": -5}
    assert key_action(")", s).changes == {"delay_ms": 20} and key_action("(", s).changes == {}   # 0 is its floor
    assert key_action("-", s.override(opacity=5)).changes == {"opacity": 0}
    assert key_action("}", s.override(blur=195)).changes == {"blur": 200}
    # colour transfer cycles through every mode and comes round again
    seen, cur = [], s
    for _ in range(6):
        a = key_action("c", cur)
        seen.append(a.changes["color_transfer"])
        cur = cur.override(**a.changes)
    assert seen == ["lct", "mkl", "idt", "sot", "none", "rct"]
    assert key_action("k", s).changes == {"mask": "dst"} and key_action("k", s.override(mask="dst")).changes == {"mask": "learned"}
    # the morph factor only where the model has one
    assert key_action("m", s).changes == {} and "no morph" in key_action("m", s).text
    assert key_action("m", s, morphable=True).changes == {"morph": 85}
    assert key_action("n", s, morphable=True).changes == {"morph": 65}
    assert key_action("m", s.override(morph=100), morphable=True).changes == {}
    # stop, help, and keys that mean nothing
    assert key_action("q", s).stop and not key_action("q", s).changes
    assert key_action("h", s).help
    assert key_action("x", s) == key_action("\n", s) == key_action("\x1b", s)
    assert not key_action("x", s).changes and not key_action("x", s).stop
    assert all(k.split(" ")[0] in key_help() for k, _ in KEYS)


def test_keys_act_on_a_running_session_and_q_closes_the_file(media, tmp_path):
    out = tmp_path / "k.mp4"
    session = LiveSession(LiveConfig(source=str(media / "single_face.mp4"), out=str(out), color_transfer="none"),
                          model=TintModel()).start()
    pressed: list[str] = []

    def keys() -> str:                                     # what a terminal reader returns between polls
        if not pressed:
            pressed.append("---]")
        elif len(pressed) == 1 and session.summary.frames_out >= 5:
            pressed.append("q")
        else:
            return ""
        return pressed[-1]

    summary = session.wait(keys=keys)
    assert pressed == ["---]", "q"]
    assert (session.settings.opacity, session.settings.erode) == (70, 10)
    assert 5 <= summary.frames_out < 72                    # q stopped it before the clip's end
    info = video_info(out)
    assert len(info["frames"]) == summary.frames_out       # a complete, closed file with every frame made


def test_press_updates_the_session_settings(media, tmp_path):
    session = LiveSession(LiveConfig(source=str(media / "single_face.mp4"), out="none"), model=TintModel())
    session.press("--]}c")
    s = session.settings
    assert (s.opacity, s.erode, s.blur, s.color_transfer) == (80, 10, 60, "lct")
    session.press("m")                                     # TintModel has no morph factor: unchanged
    assert session.settings.morph == 75
    session.press("q")
    assert session._stop.is_set()


@pytest.fixture(scope="module")
def tiny_ws(tmp_path_factory):
    from facedouble.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("live-keys") / "ws").create()
    tiny_untrained_model(ws.model)
    return ws


def test_cli_without_a_terminal_reads_no_keys(media, tiny_ws):
    from facedouble.cli import app

    r = CliRunner().invoke(app, ["live", "-w", str(tiny_ws.root), "--source", str(media / "single_face.mp4"),
                                 "--out", "none", "--max-frames", "6"])
    assert r.exit_code == 0, r.output
    assert "swapped 6 frame(s)" in r.output
    assert "keys:" not in r.output                         # stdin is not a terminal here: no key list, no reader
