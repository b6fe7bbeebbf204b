"""``posemb eval`` on Hugging Face model folders: the same instrument as for runs, in the
model's own tokens and by its own objective (next token for GPT-2 and OPT, masked tokens
for BERT, RoBERTa and ELECTRA), past the table's end only when told how.

Every folder is a tiny random model built here with its own tokenizer (tests/hfkit.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hfkit import FOLDERS, MASKED, tiny_hf_folder
from posemb.cli.main import main

pytest.importorskip("transformers")
N = 32  # positions each tiny model serves
FAMILIES = ["bert", "roberta", "electra", "gpt2", "opt"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {t: tiny_hf_folder(t, root / t, positions=N) for t in FAMILIES}


def _eval(folder: Path, out: Path, capsys, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    args = ["eval", str(folder), "--lengths", f"{N // 2},{N}", "--max-windows", "3"]
    code = main([*args, *extra, "--out", str(out)])
    o, e = capsys.readouterr()
    return code, o, e


@pytest.mark.parametrize("model_type", FAMILIES)
def test_eval_pairs_lengths_in_the_models_tokens_and_objective(
    folders, model_type, tmp_path, capsys
):
    code, out, err = _eval(folders[model_type], tmp_path / "e", capsys)
    assert code == 0, err
    records = json.loads((tmp_path / "e" / "results.json").read_text())
    assert [r["eval_len"] for r in records] == [N // 2, N]
    masked = model_type in MASKED
    for r in records:
        assert r["scheme"] == model_type and r["loss"] > 0
        assert len(r["span_losses"]) == 3
        data = r["provenance"]["data"]
        assert data["tokenizer"] == "bpe" and data["source"] == "stdlib"
        assert data["scored"] == ("masked tokens, predicted in place" if masked else "next tokens")
        # an encoder is scored at every position of a window (its masked ones), a causal LM
        # from the second on
        assert len(r["per_position"]) == r["eval_len"] - (0 if masked else 1)
    a, b = records
    # paired: the same target tokens at both lengths (one fingerprint, one count)
    assert a["tokens"] == b["tokens"] > 0
    assert a["provenance"]["data"]["fingerprint"] == b["provenance"]["data"]["fingerprint"]
    assert b["change_from"]["eval_len"] == N // 2
    if masked:  # 15% of the 32 offsets of each span masked, the same ones at every length
        assert a["tokens"] == 3 * round(0.15 * N)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_past_the_table_exits_2_with_the_out_of_range_line(folders, model_type, tmp_path, capsys):
    capsys.readouterr()
    code = main(["eval", str(folders[model_type]), "--lengths", f"{N},{2 * N}",
                 "--out", str(tmp_path / "e")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"position {2 * N - 1} is past the end of the learned table ({N} positions" in err
    assert not (tmp_path / "e" / "results.json").exists()


@pytest.mark.parametrize("model_type", ["roberta", "gpt2"])
@pytest.mark.parametrize("extra", [["--extend", "tile"], ["--mode", "sliding"]])
def test_past_the_table_with_an_extension_or_a_sliding_window(
    folders, model_type, extra, tmp_path, capsys
):
    capsys.readouterr()
    code = main(["eval", str(folders[model_type]), "--lengths", f"{N},{2 * N}",
                 "--max-windows", "2", *extra, "--out", str(tmp_path / "e")])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0, err
    records = json.loads((tmp_path / "e" / "results.json").read_text())
    assert all(r["loss"] is not None for r in records)
    assert records[0]["tokens"] == records[1]["tokens"]
    # the folder itself is never written
    assert sorted(p.name for p in folders[model_type].iterdir()) == sorted(
        ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
        + (
            ["generation_config.json"]
            if (folders[model_type] / "generation_config.json").exists()
            else []
        )
    )


def test_a_bare_encoder_is_named_in_one_line(tmp_path, capsys):
    folder = tiny_hf_folder("bert", tmp_path / "bare", positions=N, head=False)
    code, _, err = _eval(folder, tmp_path / "e", capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "holds BertModel without the masked-LM head BertForMaskedLM needs" in err
    assert "hf.new_head=true" in err


def test_an_encoder_decoder_is_extend_only(tmp_path, capsys):
    import transformers

    cfg = transformers.AutoConfig.for_model(
        "bart", vocab_size=99, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=N,
    )  # fmt: skip
    transformers.BartForConditionalGeneration(cfg).save_pretrained(tmp_path / "bart")
    code, _, err = _eval(tmp_path / "bart", tmp_path / "e", capsys)
    assert code == 2 and "'bart' model: posemb extends its tables" in err


def test_the_eval_text_masks_the_same_offsets_for_every_model(folders, tmp_path, capsys):
    """Two encoders with different tokenizers differ; one encoder's two runs agree exactly."""
    fingerprints = []
    for i in range(2):
        code, _, err = _eval(folders["bert"], tmp_path / f"e{i}", capsys)
        assert code == 0, err
        rec = json.loads((tmp_path / f"e{i}" / "results.json").read_text())[0]
        fingerprints.append((rec["provenance"]["data"]["fingerprint"], rec["loss"]))
    assert fingerprints[0] == fingerprints[1]


assert set(FAMILIES) <= set(FOLDERS)


def test_odd_requests_for_a_hugging_face_folder_exit_2_in_one_line(folders, tmp_path, capsys):
    """The out-of-range line names this command's ways past the table; synthetic tasks and
    overflow policies belong to posemb's own models; a BERT decoder is not an encoder."""
    bert = str(folders["bert"])
    cases = [
        (["--lengths", f"{2 * N}"], "--extend METHOD, in memory"),
        (["--lengths", f"{2 * N}", "--overflow", "clamp"], "act on posemb's own tables"),
        (["--lengths", "8", "--data", "synthetic:copy"], "reads text in its own tokens"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(["eval", bert, *extra, "--out", str(tmp_path / "e")]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (extra, err)
    config = json.loads((folders["bert"] / "config.json").read_text())
    decoder = tmp_path / "decoder"
    decoder.mkdir()
    for p in folders["bert"].iterdir():
        (decoder / p.name).write_bytes(p.read_bytes())
    (decoder / "config.json").write_text(json.dumps({**config, "is_decoder": True}))
    assert main(["eval", str(decoder), "--lengths", "8", "--out", str(tmp_path / "d")]) == 2
    assert "is_decoder=true" in capsys.readouterr().err


def test_a_sliding_window_never_reads_past_the_table_so_no_warning(folders, tmp_path, capsys):
    code, _, err = _eval(folders["gpt2"], tmp_path / "e", capsys, "--mode", "sliding")
    assert code == 0 and "never trained" not in err


def test_an_encoders_token_count_is_its_masked_tokens(folders, tmp_path, capsys):
    """--tokens N scores about N masked tokens (the text is drawn 1 / 0.15 times longer)."""
    capsys.readouterr()
    code = main(["eval", str(folders["bert"]), "--lengths", f"{N}", "--tokens", "300",
                 "--out", str(tmp_path / "e")])  # fmt: skip
    assert code == 0
    (record,) = json.loads((tmp_path / "e" / "results.json").read_text())
    assert 300 <= record["tokens"] <= 330  # whole spans of 32, 5 masked each (15%, rounded)
