"""The option names: each registry is the one source of its names, and the `Literal` lists of choices.py (which
the CLI, the config files and the UI read) must say the same. A name added to one and not the other fails here."""

import typing

from facedouble import choices


def names(literal) -> set[str]:
    return set(typing.get_args(literal))


def test_detectors_match_the_detector_registry():
    from facedouble.faces.detect import detector_names

    # "manual" is not a detector: its rectangles come from the user (extract/manual.py)
    assert names(choices.Detector) == set(detector_names()) | {"manual"}


def test_presets_and_architectures_match_the_model_registry():
    from facedouble.train.models.registry import ARCHITECTURES, PRESETS

    assert names(choices.ModelPreset) == set(PRESETS)
    assert names(choices.Archi) == set(ARCHITECTURES)
    assert {PRESETS[p].get("archi", "df") for p in PRESETS} <= set(ARCHITECTURES)


def test_colour_transfers_match_the_colour_registry():
    from facedouble.merge.color import TRANSFERS

    assert names(choices.ColorTransfer) == set(TRANSFERS) | {"none"}


def test_mask_modes_match_the_mask_registry():
    from facedouble.merge.mask import MASK_PARTS

    assert names(choices.MaskMode) == set(MASK_PARTS)


def test_sort_methods_that_measure_pixels_are_sort_methods():
    from facedouble.sort.sorting import METHOD_METRICS

    assert set(METHOD_METRICS) <= names(choices.SortMethod)


def test_a_colour_transfer_added_to_the_registry_is_used_by_training_and_merge(monkeypatch):
    """One module serves both: a mode registered in merge/color.py is what training's sample colour transfer and
    the merge call, by name."""
    import numpy as np

    from facedouble.merge import color

    calls = []

    def fake(src, dst, src_mask=None, dst_mask=None):
        calls.append(src.shape)
        return np.zeros_like(src, np.float32)

    monkeypatch.setitem(color.TRANSFERS, "rct", fake)
    img = np.full((8, 8, 3), 0.5, np.float32)
    assert color.color_transfer("rct", img, img).max() == 0.0
    from facedouble.train import samples

    assert samples.color_transfer is color.color_transfer
    assert calls == [(8, 8, 3)]
