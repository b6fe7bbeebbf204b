"""One name, one model: a run preset trains the model preset of the same name."""

from __future__ import annotations

import pytest

from posemb import ModelConfig
from posemb.model import PRESETS as MODEL_PRESETS
from posemb.runs import PRESETS, build_config


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_run_preset_trains_the_model_preset_of_its_name(name):
    assert PRESETS[name]["model"] == name and name in MODEL_PRESETS
    assert not any(key.startswith("model.") for key in PRESETS[name]), "architecture: one home"
    assert build_config(name, {}).model == ModelConfig.preset(name)


def test_tiny_is_the_same_model_from_python_and_from_the_command_line():
    # `posemb train --preset tiny` and ModelConfig.preset("tiny"): 2 layers x 128 wide
    cfg = ModelConfig.preset("tiny")
    assert (cfg.n_layer, cfg.n_head, cfg.d_model, cfg.max_positions) == (2, 4, 128, 256)
    assert build_config("tiny", {"model.n_layer": 3}).model == ModelConfig.preset("tiny", n_layer=3)


def test_an_unknown_run_preset_names_the_closest():
    with pytest.raises(ValueError, match="unknown preset 'tinny'. Did you mean 'tiny'"):
        build_config("tinny", {})
