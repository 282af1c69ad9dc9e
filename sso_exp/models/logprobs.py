"""Response log-probs under a causal LM, with and without gradient.

Only response tokens count: prompt and padding are masked. Position ids follow the
attention mask, so left- and right-padded batches give the same values."""

from __future__ import annotations

from functools import cache, partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedModel

from ..config import TrainerConfig
from ..data.batching import length_batches
from ..data.encoding import Encoded, pad
from ..data.pairs import SeqLogps
from ..distributed import shard_map


class HeadLogps(torch.autograd.Function):
    """log softmax(hidden @ weight.T + bias)[target] for each row, `chunk` rows at a time.

    Forward keeps only its inputs and the float32 log-probs; backward recomputes one
    chunk's logits and writes the gradient straight from the softmax (p - onehot), so a
    [rows, vocab] logits tensor never exists beyond one chunk and is never kept for
    backward. Matmuls run in the autocast dtype; log-softmax, softmax and the log-probs
    stay float32."""

    @staticmethod
    def forward(
        ctx,
        hidden: Tensor,
        weight: Tensor,
        bias: Optional[Tensor],
        targets: Tensor,
        chunk: int,
        compiled: bool = False,
    ) -> Tensor:
        kind = hidden.device.type  # backward re-enters the same autocast
        ctx.autocast = (kind, torch.get_autocast_dtype(kind), torch.is_autocast_enabled(kind))
        out = torch.empty(len(hidden), dtype=torch.float32, device=hidden.device)
        logp_rows = _kernels(compiled)[0]
        for rows in _chunks(len(hidden), chunk):
            out[rows] = logp_rows(F.linear(hidden[rows], weight, bias), targets[rows])
        ctx.save_for_backward(hidden, weight, bias, targets)
        ctx.chunk, ctx.compiled = chunk, compiled
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        kind, dtype, enabled = ctx.autocast
        # no cast cache: under the pipeline's run-long autocast a cached bf16 copy of the
        # weight would outlive this step's weights
        with torch.autocast(kind, dtype=dtype, enabled=enabled, cache_enabled=False):
            return HeadLogps._grads(ctx, grad)

    @staticmethod
    def _grads(ctx, grad: Tensor):
        hidden, weight, bias, targets = ctx.saved_tensors
        g_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        g_weight = g_bias = None  # the chunks' sums (in float32 from the second chunk on)
        grad_logits = _kernels(ctx.compiled)[1]
        for rows in _chunks(len(hidden), ctx.chunk):
            logits = F.linear(hidden[rows], weight, bias)
            dlogits = grad_logits(logits, grad[rows].float(), targets[rows])
            if g_hidden is not None:
                g_hidden[rows] = dlogits @ weight
            if ctx.needs_input_grad[1]:
                g_weight = _summed(g_weight, dlogits.T @ hidden[rows])
            if ctx.needs_input_grad[2]:
                g_bias = _summed(g_bias, dlogits.sum(0))
        return (
            g_hidden,
            None if g_weight is None else g_weight.to(weight.dtype),
            None if g_bias is None else g_bias.to(bias.dtype),
            None,
            None,
            None,
        )


def _summed(total: Optional[Tensor], part: Tensor) -> Tensor:
    """A running sum of chunks, float32 whatever the weights' dtype; one chunk is its own
    sum, so no float32 accumulator exists for it (the values are the same: the first term
    is exact in float32)."""
    return part if total is None else total.float().add_(part)


def _logp_rows(logits: Tensor, targets: Tensor) -> Tensor:
    # dtype=: computed in float32 without a float32 copy of the logits beside the result
    logp = torch.log_softmax(logits, -1, dtype=torch.float32)
    return logp.gather(-1, targets[:, None]).squeeze(-1)


def _grad_logits(logits: Tensor, grad: Tensor, targets: Tensor) -> Tensor:
    """grad x d logp(target) / d logits = grad x (onehot - softmax), in logits' dtype."""
    probs = torch.softmax(logits, -1, dtype=torch.float32).mul_(-grad[:, None])
    return probs.scatter_add_(-1, targets[:, None], grad[:, None]).to(logits.dtype)


@cache
def _kernels(compiled: bool) -> Tuple[Callable, Callable]:
    """The per-chunk steps, or torch.compile's fusion of each into one pass over the chunk
    (2-3x faster on CPU; compiled on first use, for any number of rows)."""
    if not compiled:
        return _logp_rows, _grad_logits
    return (torch.compile(_logp_rows, dynamic=True), torch.compile(_grad_logits, dynamic=True))


def _chunks(n: int, chunk: int) -> List[slice]:
    step = chunk if chunk > 0 else max(n, 1)
    return [slice(start, start + step) for start in range(0, n, step)]


def response_logps(
    head: torch.nn.Module, hidden: Tensor, targets: Tensor, chunk: int, compiled: bool = False
) -> Tensor:
    """Token log-probs of `targets` through the vocabulary projection `head`, `chunk`
    positions at a time (0: all at once)."""
    return HeadLogps.apply(hidden, head.weight, head.bias, targets, chunk, compiled)


def causal_lm(model: torch.nn.Module) -> PreTrainedModel:
    """The HF model under a peft wrapper (its LoRA layers stay in place and active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def sequence_logps(
    model: torch.nn.Module,
    batch: Dict[str, Tensor],
    chunk: int = TrainerConfig.logps_chunk,
    compiled: bool = False,
) -> SeqLogps:
    """Summed log-probs of the masked tokens per row. The decoder runs once; only response
    positions go through the vocabulary projection, in chunks of `chunk` positions."""
    lm = causal_lm(model)
    if getattr(lm.config, "final_logit_softcapping", None) or getattr(
        lm.config, "logit_scale", None
    ):
        raise NotImplementedError(f"{type(lm).__name__}: scaled/capped logits are not supported")
    attn = batch["attention_mask"]
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    hidden = lm.base_model(
        input_ids=batch["input_ids"], attention_mask=attn, position_ids=positions, use_cache=False
    ).last_hidden_state
    mask = batch["loss_mask"][:, 1:].bool()
    token_logps = response_logps(
        lm.get_output_embeddings(),
        hidden[:, :-1][mask],
        batch["input_ids"][:, 1:][mask],
        chunk,
        compiled,
    )
    rows = mask.nonzero()[:, 0]
    sums = torch.zeros(len(mask), dtype=torch.float32, device=hidden.device)
    return SeqLogps(sums.index_add(0, rows, token_logps), mask.sum(-1).float())


def score(
    model: PreTrainedModel,
    seqs: Sequence[Encoded],
    pad_id: int,
    batch_size: int,
    desc: Optional[str] = None,
    chunk: int = TrainerConfig.logps_chunk,
) -> SeqLogps:
    """Log-probs of many sequences without gradient, batched by length to cut padding; with
    several ranks each scores its share."""
    return shard_map(partial(_score, model, pad_id, batch_size, desc, chunk), seqs)


@torch.no_grad()
def _score(
    model: PreTrainedModel,
    pad_id: int,
    batch_size: int,
    desc: Optional[str],
    chunk: int,
    seqs: List[Encoded],
) -> SeqLogps:
    sums, counts = torch.zeros(len(seqs)), torch.zeros(len(seqs))
    was_training = model.training
    model.eval()
    for idx in length_batches([len(s.ids) for s in seqs], batch_size, desc):
        batch = {k: v.to(model.device) for k, v in pad([seqs[i] for i in idx], pad_id).items()}
        out = sequence_logps(model, batch, chunk)
        sums[idx], counts[idx] = out.sum.float().cpu(), out.count.float().cpu()
    model.train(was_training)
    return SeqLogps(sums, counts)


def score_named(
    model: PreTrainedModel,
    encoded: Dict[str, List[Encoded]],
    pad_id: int,
    batch_size: int,
    chunk: int = TrainerConfig.logps_chunk,
) -> Dict[str, SeqLogps]:
    """`score` for each named list of sequences (a record set's chosen, rejected, ...)."""
    return {
        name: score(model, seqs, pad_id, batch_size, f"scoring {name}", chunk)
        for name, seqs in encoded.items()
    }
