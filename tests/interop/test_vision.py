"""Vision transformers' 2-D tables: ``posemb extend SRC DST --image-size N`` on tiny random
models of every family of ``posemb.interop.vision.VISION_FAMILIES``, and ``posemb analyze``'s
ViT picture.

Parity target: the extended folder run at the new size, without any flag, gives what the
original folder gives at that size with transformers' own ``interpolate_pos_encoding=True``
(DINOv2 interpolates at every forward pass, flag or not).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from posemb.cli.main import main
from posemb.interop.vision import VISION_FAMILIES

transformers = pytest.importorskip("transformers")
OLD, NEW, PATCH = 32, 48, 8  # pixels: a 4 x 4 grid of patches grown to 6 x 6
SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
VISION = dict(**SMALL, image_size=OLD, patch_size=PATCH)
TEXT = dict(**SMALL, vocab_size=99, max_position_embeddings=16, bos_token_id=0, eos_token_id=2)


def _image(model, pixels, interpolate):
    return model(pixel_values=pixels, interpolate_pos_encoding=interpolate).last_hidden_state


def _always(model, pixels, interpolate):  # DINOv2 interpolates whatever it is told
    return model(pixel_values=pixels).last_hidden_state


def _features(model, pixels, interpolate):
    return model.get_image_features(pixel_values=pixels, interpolate_pos_encoding=interpolate)


def _tower(model, pixels, interpolate):
    out = model(pixel_values=pixels, interpolate_pos_encoding=interpolate)
    return out.last_hidden_state


# model_type -> (class, config, how to run it on pixels, with or without the flag)
TINY = {
    "vit": ("ViTModel", lambda: transformers.ViTConfig(**VISION), _image),
    "vit_msn": ("ViTMSNModel", lambda: transformers.ViTMSNConfig(**VISION), _image),
    "deit": ("DeiTModel", lambda: transformers.DeiTConfig(**VISION), _image),
    "dinov2": ("Dinov2Model", lambda: transformers.Dinov2Config(**VISION), _always),
    "dinov2_with_registers": (
        "Dinov2WithRegistersModel",
        lambda: transformers.Dinov2WithRegistersConfig(**VISION, num_register_tokens=2),
        _always,
    ),
    "clip": (
        "CLIPModel",
        lambda: transformers.CLIPConfig(text_config=TEXT, vision_config=VISION),
        _features,
    ),
    "clip_vision_model": (
        "CLIPVisionModel",
        lambda: transformers.CLIPVisionConfig(**VISION),
        _tower,
    ),
    "siglip": (
        "SiglipModel",
        lambda: transformers.SiglipConfig(text_config=TEXT, vision_config=VISION),
        _features,
    ),
    "siglip_vision_model": (
        "SiglipVisionModel",
        lambda: transformers.SiglipVisionConfig(**VISION),
        _tower,
    ),
}


def tiny_vision(model_type: str, folder: Path) -> Path:
    cls, config, _ = TINY[model_type]
    torch.manual_seed(0)
    model = getattr(transformers, cls)(config())
    with torch.no_grad():  # a random table of a trained scale, biases and gains included
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    model.save_pretrained(folder)
    processor = {"size": {"height": OLD, "width": OLD}, "crop_size": OLD, "do_resize": True}
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def test_every_family_is_tested():
    assert set(TINY) == set(VISION_FAMILIES)


@pytest.mark.parametrize("model_type", sorted(VISION_FAMILIES))
def test_the_saved_folder_equals_transformers_interpolation(model_type, tmp_path, capsys):
    src = tiny_vision(model_type, tmp_path / "src")
    dst = tmp_path / "dst"
    assert main(["extend", str(src), str(dst), "--image-size", str(NEW)]) == 0
    assert "grid 4 x 4 (32 px) -> 6 x 6 (48 px)" in capsys.readouterr().out
    cls, _, run = TINY[model_type]
    original = getattr(transformers, cls).from_pretrained(src).eval()
    grown, info = getattr(transformers, cls).from_pretrained(dst, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    pixels = torch.randn(2, 3, NEW, NEW, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = run(original, pixels, True)
        got = run(grown.eval(), pixels, False)  # no flag: the table is the new grid's
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the prefix rows (class, distillation) are the source's, bit for bit
    family = VISION_FAMILIES[model_type]
    old, new = _table(src, family.key), _table(dst, family.key)
    assert torch.equal(new[: family.prefix], old[: family.prefix])
    assert new.shape[0] == family.prefix + 36 and old.shape[0] == family.prefix + 16
    # every file that repeats the image size says the new one
    config = json.loads((dst / "config.json").read_text())
    sub = config.get("vision_config", config)
    assert sub["image_size"] == NEW
    processor = json.loads((dst / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": NEW, "width": NEW} and processor["crop_size"] == NEW


def _table(folder: Path, suffix: str) -> torch.Tensor:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    (key,) = [k for k in tensors if k == suffix or k.endswith("." + suffix)]
    table = tensors[key]
    return table[0] if table.dim() == 3 else table


def test_the_same_size_is_the_same_table_and_other_methods_keep_the_prefix(tmp_path, capsys):
    src = tiny_vision("deit", tmp_path / "src")
    assert main(["extend", str(src), str(tmp_path / "same"), "--image-size", str(OLD)]) == 0
    assert capsys.readouterr().out.startswith("kept ")  # nothing was resampled
    assert torch.equal(_table(tmp_path / "same", "embeddings.position_embeddings"),
                       _table(src, "embeddings.position_embeddings"))  # fmt: skip
    for method in ("bilinear", "tile", "pad-random"):
        out = tmp_path / method
        assert main(["extend", str(src), str(out), "--image-size", str(NEW),
                     "--method", method]) == 0  # fmt: skip
        new, old = (
            _table(out, "embeddings.position_embeddings"),
            _table(src, "embeddings.position_embeddings"),
        )
        assert torch.equal(new[:2], old[:2]) and new.shape[0] == 2 + 36
    grid = _table(tmp_path / "tile", "embeddings.position_embeddings")[2:].reshape(6, 6, -1)
    assert torch.equal(grid[4:, :4], grid[:2, :4])  # tiled: rows 4-5 repeat rows 0-1


def test_bad_vision_requests_exit_2_in_one_line(tmp_path, capsys):
    src = tiny_vision("vit", tmp_path / "src")
    cases = [
        (["--image-size", "50"], "is not a multiple of the patch size 8"),
        (["--to", "64", "--method", "tile"], "give the new image size: posemb extend SRC DST"),
        (["--to", "64"], "give the new image size: posemb extend SRC DST"),
        (["--image-size", "16"], "is smaller than the model's 32 px"),
        (["--image-size", "48", "--method", "cubic"], "--image-size resamples a grid of patches"),
        (["--image-size", "16", "--method", "pad-random"], "pad-random makes a larger grid"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(["extend", str(src), str(tmp_path / "x"), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (extra, err)
        assert not (tmp_path / "x").exists()


def test_text_commands_send_a_vision_folder_to_extend_image_size(tmp_path, capsys):
    src = tiny_vision("vit", tmp_path / "src")
    for command in (
        ["eval", str(src), "--lengths", "16", "--out", str(tmp_path / "e")],
        ["probe-order", str(src), "ab", "ba"],
    ):
        capsys.readouterr()
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "vision model" in err and "--image-size PX" in err, (command, err)
        assert err.count("\n") == 1, err


def test_analyze_draws_the_vit_picture(tmp_path, capsys):
    src = tiny_vision("vit", tmp_path / "src")
    out = tmp_path / "analysis"
    assert main(["analyze", str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "patch grid" in printed and "4 × 4 after 1 prefix row(s)" in printed
    summary = json.loads((out / "analysis.json").read_text())
    grid = summary["grid"]
    assert grid["grid"] == [4, 4] and grid["prefix"] == 1
    assert grid["by_row_offset"][0] == pytest.approx(1.0)
    assert len(grid["by_col_offset"]) == 4
    assert summary["reading"][0].startswith("The 4 x 4 patch rows")
    assert (out / "position_grid.png").read_bytes().startswith(b"\x89PNG")
    assert "position_grid.png" in (out / "report.md").read_text()


def test_a_smaller_image_size_needs_allow_shrink_or_crop(tmp_path, capsys):
    """Shrinking the grid loses patches: refused unless asked for (--allow-shrink), or
    --method crop, which exists to shrink."""
    src = tiny_vision("vit", tmp_path / "src")
    small = OLD // 2
    assert main(["extend", str(src), str(tmp_path / "a"), "--image-size", str(small),
                 "--allow-shrink"]) == 0  # fmt: skip
    assert "resampled" in capsys.readouterr().out
    assert main(["extend", str(src), str(tmp_path / "c"), "--image-size", str(small),
                 "--method", "crop"]) == 0  # fmt: skip
    assert "resized" in capsys.readouterr().out
    side = small // PATCH
    for out in ("a", "c"):
        table = _table(tmp_path / out, "embeddings.position_embeddings")
        assert table.shape[0] == 1 + side * side
