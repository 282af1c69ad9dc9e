"""Response log-probs under a causal LM, with and without gradient.

Only response tokens count: prompt and padding are masked. Batches come from
data/packing.py, so sequences of one prompt may share a row."""

from __future__ import annotations

from functools import cache, partial
from itertools import accumulate, pairwise
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from transformers import PreTrainedModel

from ..config import TrainerConfig
from ..data.batching import length_batches
from ..data.encoding import Encoded
from ..data.packing import pack, prompt_groups
from ..data.pairs import SeqLogps
from ..distributed import shard_map
from .device import autocast_dtype


class HeadLogps(torch.autograd.Function):
    """log softmax(hidden @ weight.T + bias)[target] for each row, `chunk` rows at a time.

    Forward keeps only its inputs and the float32 log-probs; backward recomputes one
    chunk's logits and writes the gradient straight from the softmax (p - onehot), so a
    [rows, vocab] logits tensor never exists beyond one chunk and is never kept for
    backward. Matmuls run in the autocast dtype; log-softmax, softmax and the log-probs
    stay float32.

    A call's chunks write their logits (and gradients) into one buffer, and the weight's
    gradient sums the chunks in place: a fresh [chunk, vocab] tensor per matmul is mapped
    and page-faulted afresh each time, as glibc maps every block above 32 MB, which cost
    more than the matmul itself (scripts/bench_head.py measures it)."""

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
        project = _Projection(hidden, weight, bias, chunk)
        for rows in project.chunks:  # clone: a view's base would be guarded on
            out[rows] = logp_rows(project.logits(rows), targets[rows].clone())
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
        project = _Projection(hidden, weight, bias, ctx.chunk)
        g_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        # the chunks' sums; the weight's in the matmuls' dtype, rounded once a chunk as
        # autograd rounds its sum over the forwards that use a weight
        g_weight = g_bias = None
        grad_logits = _kernels(ctx.compiled)[1]
        dlogits = torch.empty_like(project.buffer)
        for rows in project.chunks:
            d = dlogits[: rows.stop - rows.start]
            grad_logits(project.logits(rows), grad[rows].float().clone(), targets[rows].clone(), d)
            if g_hidden is not None:
                g_hidden[rows] = d @ project.weight
            if ctx.needs_input_grad[1]:
                g_weight = _add_product(g_weight, d.T, project.hidden[rows])
            if ctx.needs_input_grad[2]:
                g_bias = _summed(g_bias, d.sum(0))
        return (
            g_hidden,
            None if g_weight is None else g_weight.to(weight.dtype),
            None if g_bias is None else g_bias.to(bias.dtype),
            None,
            None,
            None,
        )


class _Projection:
    """The head's operands in the matmuls' dtype (autocast's, else their own) and one
    buffer for a chunk's logits, reused by every chunk of the call."""

    def __init__(self, hidden: Tensor, weight: Tensor, bias: Optional[Tensor], chunk: int):
        dtype = autocast_dtype(hidden.device.type) or weight.dtype
        self.hidden, self.weight = hidden.to(dtype), weight.to(dtype)
        self.bias = None if bias is None else bias.to(dtype)
        self.chunks = _chunks(len(hidden), chunk)
        width = self.chunks[0].stop if self.chunks else 0
        self.buffer = hidden.new_empty((width, len(weight)), dtype=dtype)

    def logits(self, rows: slice) -> Tensor:
        h = self.hidden[rows]
        out = self.buffer[: len(h)]
        if self.bias is None:
            return torch.mm(h, self.weight.T, out=out)
        return torch.addmm(self.bias, h, self.weight.T, out=out)


def _add_product(total: Optional[Tensor], a: Tensor, b: Tensor) -> Tensor:
    """total + a @ b, in place from the second chunk on (its sum rounds once per chunk)."""
    return torch.mm(a, b) if total is None else total.addmm_(a, b)


def _summed(total: Optional[Tensor], part: Tensor) -> Tensor:
    """A running sum of chunks, float32 whatever the weights' dtype; one chunk is its own
    sum, so no float32 accumulator exists for it (the values are the same: the first term
    is exact in float32)."""
    return part if total is None else total.float().add_(part)


ROW_BLOCK = 64  # rows per float32 temporary in the plain kernels: 12.6 MB at a 49k vocabulary


def _logp_rows(logits: Tensor, targets: Tensor) -> Tensor:
    """log softmax(logits)[target] in float32, `ROW_BLOCK` rows at a time: a float32 copy
    of a whole chunk would be mapped afresh on every call (HeadLogps)."""
    out = torch.empty(len(logits), dtype=torch.float32, device=logits.device)
    for rows in _chunks(len(logits), ROW_BLOCK):
        block = logits[rows].float()
        out[rows] = block.gather(-1, targets[rows, None]).squeeze(-1) - block.logsumexp(-1)
    return out


def _grad_logits(logits: Tensor, grad: Tensor, targets: Tensor, out: Tensor) -> None:
    """out = grad x d logp(target) / d logits = grad x (onehot - softmax), in the logits'
    dtype, `ROW_BLOCK` rows at a time."""
    for rows in _chunks(len(logits), ROW_BLOCK):
        g = grad[rows, None]
        probs = torch.softmax(logits[rows], -1, dtype=torch.float32).mul_(-g)
        out[rows] = probs.scatter_add_(-1, targets[rows, None], g)


def _fused_logp_rows(logits: Tensor, targets: Tensor) -> Tensor:
    # dtype=: computed in float32 without a float32 copy of the logits beside the result
    logp = torch.log_softmax(logits, -1, dtype=torch.float32)
    return logp.gather(-1, targets[:, None]).squeeze(-1)


def _fused_grad_logits(logits: Tensor, grad: Tensor, targets: Tensor, out: Tensor) -> None:
    """`_grad_logits` as one pointwise pass after the softmax's reductions: no scatter, so
    inductor writes `out` without a float32 intermediate. (Writing over the logits
    themselves fails to compile, and runs slower where it does.)"""
    probs = torch.softmax(logits, -1, dtype=torch.float32)
    vocab = torch.arange(logits.shape[-1], device=logits.device)
    onehot = (vocab[None, :] == targets[:, None]).float()
    out.copy_((onehot - probs) * grad[:, None])


@cache
def _kernels(compiled: bool) -> Tuple[Callable, Callable]:
    """The per-chunk steps, or torch.compile's fusion of each into one pass over the chunk
    (2-3x faster on CPU; compiled on first use, for any number of rows)."""
    if not compiled:
        return _logp_rows, _grad_logits
    return (
        torch.compile(_fused_logp_rows, dynamic=True),
        torch.compile(_fused_grad_logits, dynamic=True),
    )


def _chunks(n: int, chunk: int) -> List[slice]:
    step = chunk if chunk > 0 else max(n, 1)
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def response_logps(
    head: torch.nn.Module, hidden: Tensor, targets: Tensor, chunk: int, compiled: bool = False
) -> Tensor:
    """Token log-probs of `targets` through the vocabulary projection `head`, `chunk`
    positions at a time (0: all at once)."""
    return HeadLogps.apply(hidden, head.weight, head.bias, targets, chunk, compiled)


def causal_lm(model: torch.nn.Module) -> PreTrainedModel:
    """The HF model under a peft wrapper (its LoRA layers stay in place and active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


TREE_MASK_KERNELS = ("sdpa", "eager")  # HF attention kernels that take a 4D mask


def shares_prefixes(model: torch.nn.Module) -> bool:
    """Whether a group of sequences can share one row (data/packing.py): the attention
    kernel must take a tree mask (flash-attention's takes padding only)."""
    return causal_lm(model).config._attn_implementation in TREE_MASK_KERNELS


def sequence_logps(
    model: torch.nn.Module,
    batch: Dict[str, Tensor],
    chunk: int = TrainerConfig.logps_chunk,
    compiled: bool = False,
) -> SeqLogps:
    """Summed log-probs of each sequence's counted tokens in a packed batch (data/packing.py).
    The decoder runs once; only the hidden states that predict counted tokens go through the
    vocabulary projection, in chunks of `chunk` positions."""
    lm = causal_lm(model)
    if getattr(lm.config, "final_logit_softcapping", None) or getattr(
        lm.config, "logit_scale", None
    ):
        raise NotImplementedError(f"{type(lm).__name__}: scaled/capped logits are not supported")
    mask = batch["attention_mask"]
    if mask.ndim == 4 and lm.config._attn_implementation == "eager":  # eager adds its mask
        blocked = torch.finfo(lm.dtype).min
        mask = torch.zeros(mask.shape, dtype=lm.dtype, device=mask.device).masked_fill_(
            ~mask, blocked
        )
    hidden = lm.base_model(
        input_ids=batch["input_ids"],
        attention_mask=mask,
        position_ids=batch["position_ids"],
        use_cache=False,
    ).last_hidden_state
    token_logps = response_logps(
        lm.get_output_embeddings(),
        hidden.reshape(-1, hidden.shape[-1])[batch["predictors"]],
        batch["targets"],
        chunk,
        compiled,
    )
    counts = batch["counts"]
    sums = torch.zeros(len(counts), dtype=torch.float32, device=hidden.device)
    return SeqLogps(sums.index_add(0, batch["owners"], token_logps), counts)


def score(
    model: PreTrainedModel,
    seqs: Sequence[Encoded],
    pad_id: int,
    batch_size: int,
    desc: Optional[str] = None,
    chunk: int = TrainerConfig.logps_chunk,
    groups: Optional[Sequence[Sequence[int]]] = None,
) -> SeqLogps:
    """Log-probs of many sequences without gradient, `groups` of them sharing a row (each
    on its own when None or the kernel takes no tree mask); rows batched by length to cut
    padding, `batch_size` sequences at most to a batch; with several ranks each scores its
    share of the rows."""
    if groups is None or not shares_prefixes(model):
        groups = [[i] for i in range(len(seqs))]
    rows = [[seqs[i] for i in g] for g in groups]
    out = shard_map(partial(_score, model, pad_id, batch_size, desc, chunk), rows)
    order = torch.tensor([i for g in groups for i in g], dtype=torch.long)
    sums, counts = torch.zeros(len(seqs)), torch.zeros(len(seqs))
    sums[order], counts[order] = out.sum, out.count
    return SeqLogps(sums, counts)


@torch.no_grad()
def _score(
    model: PreTrainedModel,
    pad_id: int,
    batch_size: int,
    desc: Optional[str],
    chunk: int,
    rows: List[List[Encoded]],
) -> SeqLogps:
    """The rows' sequences' log-probs, in the rows' order."""
    sizes = [len(r) for r in rows]
    first = list(accumulate([0, *sizes]))  # each row's first sequence in the flat order
    sums, counts = torch.zeros(first[-1]), torch.zeros(first[-1])
    widths = [sum(len(s.ids) for s in r) for r in rows]
    per_batch = max(1, batch_size // max(sizes, default=1))
    was_training = model.training
    model.eval()
    for idx in length_batches(widths, per_batch, desc, sizes):
        where = [first[i] + j for i in idx for j in range(sizes[i])]
        groups = [list(range(a, b)) for a, b in pairwise(accumulate([0, *(sizes[i] for i in idx)]))]
        batch = pack([s for i in idx for s in rows[i]], groups, pad_id)
        out = sequence_logps(model, {k: v.to(model.device) for k, v in batch.items()}, chunk)
        sums[where], counts[where] = out.sum.float().cpu(), out.count.float().cpu()
    model.train(was_training)
    return SeqLogps(sums, counts)


def score_named(
    model: PreTrainedModel,
    encoded: Dict[str, List[Encoded]],
    pad_id: int,
    batch_size: int,
    chunk: int = TrainerConfig.logps_chunk,
) -> Dict[str, SeqLogps]:
    """`score` for named lists of sequences (a record set's chosen, rejected, ...), a
    record's sequences under one prompt sharing a row."""
    lists = list(encoded.values())
    seqs = [s for seqs in lists for s in seqs]
    out = score(model, seqs, pad_id, batch_size, "scoring", chunk, prompt_groups(lists))
    bounds = pairwise(accumulate([0, *map(len, lists)]))
    return {name: SeqLogps(out.sum[a:b], out.count[a:b]) for name, (a, b) in zip(encoded, bounds)}
