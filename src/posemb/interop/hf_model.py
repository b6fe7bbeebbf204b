"""A Hugging Face model folder as a model posemb scores and trains: the model's own modeling
code from ``transformers``, behind posemb's interface (docs/HF.md, "Past the old end").

:func:`open_hf` reads a local folder (``config.json`` + safetensors, every file through the
one path-safety rule, nothing unpickled), builds the model with its objective's head
(``AutoModelForCausalLM`` for the GPT-2/OPT families, ``AutoModelForMaskedLM`` for the
BERT/RoBERTa families), optionally grows its position tables in memory (the extension of
``posemb extend``, :func:`posemb.interop.hf_extend.extend_tensors`), and wraps it in
:class:`HFModel`, which answers as ``posemb.Transformer`` does where evaluation and training
ask: ``model(ids, targets=...)`` returns logits and loss, ``position_limit`` is the number
of positions it serves (an input past it raises :class:`~posemb.PositionOutOfRangeError`
before any lookup, never an ``IndexError``), ``position_parameters()`` are its tables,
``extend_positions`` returns a copy with longer tables, ``config`` is a
:class:`~posemb.ModelConfig` summary (sizes, vocabulary, positions, causal or not) for the
memory estimate, the data pipeline and the reports.

Objectives: a causal LM predicts each next token; an encoder predicts masked tokens in place
(BERT's recipe). A folder holding only the bare encoder (a ``BertModel``, as every
sentence-transformers model) has no masked-LM head: :class:`MissingHeadError` says so in one
line, and ``new_head=True`` (``posemb train --init DIR --set hf.new_head=true``) starts
one fresh. Encoder-decoder families (BART, Whisper, ...) are extend-only.

``transformers`` is imported when a folder is opened (``pip install 'posemb[hf]'``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..files import read_json
from ..model import ModelConfig, TransformerOutput
from ..model.transformer import cross_entropy
from ..positional import PositionOutOfRangeError
from ..positional.checks import is_int
from ..runs.layout import CONFIG_FILE, folder_kind, run_file
from .families import FAMILIES, family_of, matches, positions_served
from .hf_extend import extend_tensors
from .hf_files import read_weights, require_dir

# families whose objective is the next token; every other learned-table family of FAMILIES
# but the encoder-decoders and ImageGPT (pixels) is an encoder with a masked-LM objective
CAUSAL_TYPES = ("gpt2", "gpt_neo", "gpt_bigcode", "opt", "biogpt")
EXTEND_ONLY = (
    "bart",
    "mbart",
    "plbart",
    "mvp",
    "blenderbot",
    "blenderbot-small",
    "whisper",
    "imagegpt",
)
OBJECTIVES = ("causal", "masked")
# what to do past a Hugging Face model's table (its own ways: no overflow policy)
REMEDIES = (
    "Grow the table (posemb eval --extend METHOD, in memory; posemb extend SRC DST --to N, on "
    "disk; posemb train --init SRC --extend METHOD to fine-tune it) or read the text through a "
    "sliding window of the table's size (posemb eval --mode sliding)."
)


SYNTHETIC = (
    "a Hugging Face model reads text in its own tokens: synthetic tasks (--data synthetic:...) "
    "are posemb's own models' byte-level problems; pass a text FILE, DIR or GLOB with --data"
)


class MissingHeadError(ValueError):
    """The folder holds the model without its objective's head (a bare encoder)."""


@dataclass(frozen=True)
class HFFolder:
    """What a Hugging Face model folder is, read from its ``config.json``.

    Attributes:
        path: the folder.
        config: its ``config.json``.
        model_type: ``config.json``'s ``model_type`` (a row of ``FAMILIES``).
        objective: ``"causal"`` (next token) or ``"masked"`` (masked tokens in place).
        positions: the positions its (first) table serves, reserved rows not counted.
        offset: the reserved rows in front of the table (RoBERTa, OPT: 2).
    """

    path: Path
    config: dict[str, Any]
    model_type: str
    objective: str
    positions: int
    offset: int

    @property
    def where(self) -> str:
        return str(self.path / CONFIG_FILE)


def read_folder(path: str | Path) -> HFFolder:
    """The facts of a Hugging Face model folder, or one line saying why posemb cannot score
    or train it (not a folder, not a Hugging Face model, a family without a learned table,
    an encoder-decoder)."""
    path = require_dir(Path(path), "Hugging Face model folder")
    if folder_kind(path) != "hf":
        raise ValueError(
            f"{str(path)!r} is not a Hugging Face model folder (no config.json with a model_type)"
        )
    config = read_json(run_file(path, CONFIG_FILE))
    where = str(path / CONFIG_FILE)
    model_type, family = family_of(config, where)
    if model_type in EXTEND_ONLY:
        raise ValueError(
            f"{where} is a {model_type!r} model: posemb extends its tables (posemb extend) but "
            f"evaluates and fine-tunes only the causal ({', '.join(CAUSAL_TYPES)}) and masked-LM "
            "encoder families (docs/HF.md)"
        )
    _, offset, positions = positions_served(family.tables[0], config, where)
    objective = "causal" if model_type in CAUSAL_TYPES else "masked"
    if objective == "masked" and config.get("is_decoder") is True:
        raise ValueError(
            f"{where} has is_decoder=true: a {model_type!r} decoder (BertLMHeadModel) is not "
            "an encoder posemb can score by masked tokens, nor a family it trains as a causal LM"
        )
    return HFFolder(path, config, model_type, objective, positions, offset)


def summary_config(config: dict[str, Any], objective: str, positions: int) -> ModelConfig:
    """A :class:`~posemb.ModelConfig` holding what posemb's estimates and pipeline need of a
    Hugging Face model: vocabulary, positions, causal or not, and its sizes (read from the
    field names the families use; a size it cannot find is a small stand-in)."""

    def pick(*names: str, default: int) -> int:
        return next((config[n] for n in names if is_int(config.get(n)) and config[n] > 0), default)

    d_model = pick("hidden_size", "n_embd", "d_model", "dim", default=64)
    n_head = pick("num_attention_heads", "n_head", "num_heads", "n_heads", default=1)
    if d_model % n_head:
        n_head = 1
    return ModelConfig(
        vocab_size=pick("vocab_size", default=1),
        max_positions=positions,
        n_layer=pick("num_hidden_layers", "n_layer", "num_layers", "n_layers", default=1),
        n_head=n_head,
        d_model=d_model,
        d_ff=pick("intermediate_size", "n_inner", "ffn_dim", "hidden_dim", default=4 * d_model),
        causal=objective == "causal",
    )


class HFModel(nn.Module):
    """A ``transformers`` model with its objective's head, answering as ``posemb.Transformer``
    where posemb's evaluation and trainer ask (see the module doc).

    Attributes:
        hf: the ``transformers`` model (``save_pretrained`` and pipelines work on it).
        folder: the facts of the folder it came from (its ``positions`` are this model's).
        config: the :class:`~posemb.ModelConfig` summary.
    """

    def __init__(self, hf: nn.Module, folder: HFFolder) -> None:
        super().__init__()
        self.hf = hf
        self.folder = folder
        self.config = summary_config(folder.config, folder.objective, folder.positions)
        self.dropped: list[str] = []  # the folder's tensors the model has no place for

    @property
    def position_limit(self) -> int:
        return self.folder.positions

    def position_parameters(self) -> list[nn.Parameter]:
        """The model's learned position tables (the family's ``FAMILIES`` row)."""
        keys = [t.key for t in FAMILIES[self.folder.model_type].tables]
        return [p for name, p in self.hf.named_parameters() if any(matches(name, k) for k in keys)]

    def position_table(self) -> Tensor:
        """The first table, reserved rows included (``[offset + positions, d]``)."""
        return self.position_parameters()[0]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # the state dict is the wrapped model's, under its own names: a checkpoint of the run is
    # the folder's model.safetensors, which transformers loads as it is
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.hf.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False):
        return self.hf.load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(
        self,
        input_ids: Tensor,
        positions: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        targets: Tensor | None = None,
    ) -> TransformerOutput:
        """Logits ``[b, t, V]`` and, with ``targets`` (each position's own target, -100 where
        none) or ``labels`` (a causal LM's ids, shifted inside), the mean loss in nats.

        Raises:
            PositionOutOfRangeError: ``t`` is past the positions the model serves (before
                the model's own lookup would fail).
            ValueError: explicit ``positions``: the model numbers its positions itself.
        """
        t = input_ids.shape[1]
        if t > self.position_limit:
            raise PositionOutOfRangeError(t - 1, self.position_limit, REMEDIES)
        if positions is not None:
            raise ValueError(
                "a Hugging Face model numbers its own positions (0 .. t-1, after its reserved "
                "rows): train it with train.positions=start"
            )
        logits = self.hf(input_ids=input_ids, attention_mask=attention_mask).logits  # [b, t, V]
        loss = None
        if targets is not None:
            loss = cross_entropy(logits, targets.to(logits.device))
        elif labels is not None:
            shift = self.config.causal
            y = labels.to(logits.device)
            loss = cross_entropy(logits[:, :-1] if shift else logits, y[:, 1:] if shift else y)
        return TransformerOutput(logits, loss, None, None)

    def extend_positions(
        self,
        new_max: int | None,
        method: str = "interpolate",
        *,
        overflow: str | None = None,
        generator: torch.Generator | None = None,
    ) -> HFModel:
        """A copy whose tables serve ``new_max`` positions (``method``: an extension method);
        this model is untouched. Overflow policies are posemb's own tables' only."""
        if overflow is not None:
            raise ValueError(
                "overflow policies (clamp, wrap) act on posemb's own tables; extend a Hugging "
                "Face model's table (--extend METHOD) or use --mode sliding"
            )
        if new_max is None or new_max == self.position_limit:
            return self
        tensors = {k: v.detach().clone() for k, v in self.hf.state_dict().items()}
        config = copy.deepcopy(self.folder.config)
        extend_tensors(tensors, config, self.folder.where, new_max, method, generator=generator)
        folder = _with_config(self.folder, config)
        device = next(self.parameters()).device
        return build(folder, tensors).to(device).train(self.training)


def _with_config(folder: HFFolder, config: dict[str, Any]) -> HFFolder:
    _, offset, positions = positions_served(
        FAMILIES[folder.model_type].tables[0], config, folder.where
    )
    return HFFolder(folder.path, config, folder.model_type, folder.objective, positions, offset)


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "scoring or training a Hugging Face model needs transformers: pip install 'posemb[hf]'"
        ) from None
    return transformers


def hf_config(folder: HFFolder):
    """The ``transformers`` config object of ``folder.config``."""
    transformers = _transformers()
    mapping = transformers.models.auto.configuration_auto.CONFIG_MAPPING
    return mapping[folder.model_type].from_dict(
        {k: v for k, v in folder.config.items() if k != "model_type"}
    )


def build(
    folder: HFFolder, tensors: dict[str, Tensor], *, new_head: bool = False, seed: int = 0
) -> HFModel:
    """The model of ``folder`` (its objective's head) holding ``tensors``, in float32.

    A tensor of a stored buffer the model no longer keeps (old ``position_ids``), or of
    another task's head, is left out. ``new_head``: a folder without the objective's head
    (a bare encoder) gets a fresh one, drawn with ``seed``; otherwise that is a
    :class:`MissingHeadError`.
    """
    transformers = _transformers()
    auto = transformers.AutoModelForCausalLM
    if folder.objective == "masked":
        auto = transformers.AutoModelForMaskedLM
    config = hf_config(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto.from_config(config).float()
    tensors = _with_base_prefix(model, tensors)
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as e:  # "size mismatch for ...": weights of another shape
        first = str(e).strip().splitlines()[-1].strip()
        raise ValueError(
            f"{folder.path}'s weights do not match its config.json ({first})"
        ) from None
    model.tie_weights()
    missing = _untied(model, set(missing), set(tensors))
    if missing:
        base = f"{model.base_model_prefix}."
        head = sorted(k for k in missing if not k.startswith(base))
        body = sorted(k for k in missing if k.startswith(base))
        if body:
            raise ValueError(
                f"{folder.path} does not hold the weights its config.json describes: missing "
                f"{', '.join(body[:3])}{' ...' if len(body) > 3 else ''}"
            )
        if not new_head:
            raise MissingHeadError(_missing_head(folder, type(model).__name__, head))
    config.architectures = [type(model).__name__]
    wrapped = HFModel(model, folder).eval()
    # tensors the head model has no place for (another task's head, a pooler), but stale
    # buffers it rebuilds itself
    wrapped.dropped = sorted(k for k in unexpected if not k.endswith(_REBUILT))
    return wrapped


_REBUILT = ("position_ids", "token_type_ids", ".attn.bias", ".attn.masked_bias")


def _with_base_prefix(model: nn.Module, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """A bare base model's tensors (``embeddings.…``, saved by ``BertModel``) under the
    head model's base prefix (``bert.embeddings.…``)."""
    base = f"{model.base_model_prefix}."
    own = model.state_dict().keys()
    if any(k.startswith(base) for k in tensors) or not any(k.startswith(base) for k in own):
        return tensors
    return {(base + k if base + k in own else k): v for k, v in tensors.items()}


def _untied(model: nn.Module, missing: set[str], loaded: set[str]) -> set[str]:
    """The missing keys that are not the same tensor as a loaded one (tied weights)."""
    state = model.state_dict(keep_vars=True)
    pointers = {state[k].data_ptr() for k in loaded if k in state}
    return {k for k in missing if k in state and state[k].data_ptr() not in pointers}


def _missing_head(folder: HFFolder, head: str, keys: list[str]) -> str:
    archs = folder.config.get("architectures")
    held = archs[0] if isinstance(archs, list) and archs else "the bare model"
    return (
        f"{folder.path} holds {held} without the {folder.objective}-LM head {head} needs "
        f"({len(keys)} tensors such as {keys[0]}): posemb scores a model by its own objective, "
        "so a bare encoder (every sentence-transformers model) has nothing to score with. "
        f"Fine-tune one with a fresh head first (posemb train --init {folder.path} --set "
        "hf.new_head=true ...), or pass a folder saved from the model with its head"
    )


def open_hf(
    path: str | Path,
    *,
    positions: int | None = None,
    method: str | None = None,
    new_head: bool = False,
    seed: int = 0,
) -> HFModel:
    """The model of a Hugging Face folder, its tables grown to ``positions`` by ``method``
    when given (in memory: the folder is never written), in eval mode on the CPU.

    Raises:
        ValueError: not a folder posemb can score or train (one line why), pickle-only
            weights, weights that do not match the config, a missing head
            (:class:`MissingHeadError`), or a size change without a method.
    """
    folder = read_folder(path)
    tensors = read_weights(folder.path)
    if positions is not None and positions != folder.positions:
        if not method:
            raise ValueError(
                f"{folder.path} serves {folder.positions} positions; growing it to {positions} "
                "needs an extension method (--extend METHOD)"
            )
        config = copy.deepcopy(folder.config)
        generator = torch.Generator().manual_seed(seed)
        extend_tensors(tensors, config, folder.where, positions, method, generator=generator)
        folder = _with_config(folder, config)
    return build(folder, tensors, new_head=new_head, seed=seed)


def open_for_scoring(path: str | Path, data: str | None = None):
    """What ``posemb eval`` (and a sweep) needs of a Hugging Face folder: ``(model,
    tokenizer, settings, mask_id)``. The settings describe the folder as a run (its model
    summary, its positions as the training length, ``data`` or ``stdlib`` as the text) —
    or are the run's own when posemb fine-tuned the folder; ``mask_id`` is the mask token
    of a masked-LM model (None for a causal one).

    Raises:
        ValueError: no tokenizer in the folder, or a masked-LM model whose tokenizer has no
            mask token (one line each), or any refusal of :func:`open_hf`.
    """
    from ..data import is_synthetic
    from ..runs import RUN_SETTINGS_FILE, read_config
    from ..runs.config import DataConfig, RunConfig, TrainConfig
    from .tokenizers import model_tokenizer, special_token_id

    if data is not None and is_synthetic(data):
        raise ValueError(SYNTHETIC)
    model = open_hf(path)
    tokenizer = model_tokenizer(model.folder.path)
    mask_id = None
    if model.folder.objective == "masked":
        mask_id = special_token_id(model.folder.path, tokenizer, "mask_token")
        if mask_id is None:
            raise ValueError(
                f"{model.folder.path}'s tokenizer has no mask token ([MASK] or <mask>, or the "
                "mask_token of tokenizer_config.json): a masked-LM model is scored on masked text"
            )
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(
            f"{model.folder.path}'s tokenizer has {tokenizer.vocab_size} ids, more than the "
            f"model's vocabulary of {model.config.vocab_size}: they do not belong together"
        )
    if run_file(model.folder.path, RUN_SETTINGS_FILE).is_file():  # posemb fine-tuned it
        settings = read_config(model.folder.path)
    else:  # a folder as it came: what posemb knows of it
        settings = RunConfig(
            model=model.config,
            train=TrainConfig(seq_len=model.position_limit),
            data=DataConfig(source=data or "stdlib", tokenizer=tokenizer.kind),
        )
    return model, tokenizer, settings, mask_id
