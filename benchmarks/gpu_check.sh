#!/usr/bin/env bash
# One prepared script for a GPU session (see BENCHMARKS.md "Still to measure on a GPU").
# Runs on the device machine's own stack (torch, transformers already installed there):
#   bash benchmarks/gpu_check.sh            # results under ${OUT:-gpu_out}/
# 1. the CUDA-specific parity checks (FlexAttention score_mod vs SDPA bias, compile);
# 2. GPT-2 124M training-step throughput against Hugging Face GPT-2, eager and compiled;
# 3. the shakespeare-char preset on tinyshakespeare (nanoGPT's baby GPT), wall time and val loss.
set -uo pipefail
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$out/gpu.txt" 2>&1
python -c "import torch, transformers; print(torch.__version__, transformers.__version__)" >> "$out/gpu.txt"
python - > "$out/cuda_parity.txt" 2>&1 <<'PY'
import torch
from posemb import ModelConfig, Transformer
torch.manual_seed(0)
for scheme in ("alibi", "t5", "shaw", "learned", "rope"):
    m = Transformer(ModelConfig.preset("micro", position=scheme, attention="sdpa")).cuda()
    f = Transformer(m.config.replace(attention="auto")).cuda(); f.load_state_dict(m.state_dict())
    ids = torch.randint(0, 256, (4, 64), device="cuda")
    a, b = m(ids, labels=ids), f(ids, labels=ids)
    b.loss.backward()
    print(scheme, "max |flex - sdpa| logits:", (a.logits - b.logits).abs().max().item())
    c = torch.compile(f, fullgraph=True)
    print(scheme, "compiled loss:", c(ids, labels=ids).loss.item(), "eager:", b.loss.item())
PY
python benchmarks/bench_throughput.py --compile --out "$out/bench_gpt2_124m.json" > "$out/bench.txt" 2>&1
timeout 420 python -m posemb train --config configs/shakespeare-char.toml \
    --data ../shared/data/tinyshakespeare.txt --set train.progress=false --out "$out/shakespeare" \
    > "$out/shakespeare.txt" 2>&1
cp "$out/shakespeare/metrics.jsonl" "$out/shakespeare_metrics.jsonl" 2>/dev/null
rm -rf "$out/shakespeare"
tail -n 3 "$out"/*.txt
