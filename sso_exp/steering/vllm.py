"""The `Sampler` on vLLM (`generation=vllm`, GPU machines), colocated with training: one
engine per rank, in the rank's own process on its own GPU (vLLM's external launcher: the
ranks are ours, started by Lightning or torchrun). Before every sampling call the policy's
current weights are pushed into the engine, so each iteration samples from the policy it
has just trained; between calls the engine sleeps (its KV cache freed, its weights moved to
CPU memory) so training has the GPU. vLLM is imported only here, only when chosen."""

from __future__ import annotations

import os
from functools import partial
from typing import Dict, List, Sequence, Set

from ..config import GenerationConfig
from ..data.encoding import chat_prompt
from ..distributed import is_main, shard_map, world
from ..errors import ConfigError
from ..models.logprobs import causal_lm
from .sampling import Chat

_ENGINES: Dict[int, object] = {}  # one engine per policy object
_ASLEEP: Set[int] = set()  # the engines sleeping while training runs


def _vllm():
    try:
        import vllm
    except ImportError as err:
        raise ConfigError(
            "config key 'generation.backend': vllm is not installed; on a GPU "
            "machine `pip install vllm`, or use generation=hf"
        ) from err
    return vllm


def check_available() -> None:
    """Fail at start-up, before any work, when vLLM cannot be imported."""
    _vllm()


def engine(model, cfg: GenerationConfig, seed: int):
    """The vLLM engine for `model`, built once from the folder the model was loaded from."""
    if id(model) not in _ENGINES:
        path = causal_lm(model).name_or_path
        if not path or not os.path.isdir(path):
            raise ConfigError(
                f"config key 'generation.backend': vLLM needs the policy's folder "
                f"on disk; '{path}' is not one"
            )
        # the engine in this process, so its model can take our weights directly
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        ranks = {"distributed_executor_backend": "external_launcher"} if world() > 1 else {}
        _ENGINES[id(model)] = _vllm().LLM(
            model=path,
            dtype=cfg.vllm_dtype,
            seed=seed,
            gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
            enable_sleep_mode=cfg.vllm_sleep_level > 0,
            **ranks,
        )
    return _ENGINES[id(model)]


def push_weights(llm, model) -> None:
    """Load the policy's current weights into the engine's copy of the model."""
    worker = llm.llm_engine.model_executor.driver_worker
    runner = getattr(worker, "worker", worker).model_runner  # V1 wraps the worker once more
    runner.model.load_weights(causal_lm(model).state_dict().items())


class VLLMSampler:
    def __init__(self, model, tok, cfg: GenerationConfig, seed: int):
        self.model, self.tok, self.cfg, self.seed = model, tok, cfg, seed
        self.sampled = 0

    def sample(
        self, chats: Sequence[Chat], max_new_tokens: int, desc: str, seeds: Sequence[int]
    ) -> List[str]:
        """One completion per chat, in order, chat i with its own seed; each rank samples
        its share."""
        return shard_map(partial(self._sample, max_new_tokens), chats, seeds)

    def _sample(self, max_new_tokens: int, chats: List[Chat], seeds: List[int]) -> List[str]:
        """Token ids are given to vLLM as the HF path tokenizes them (no special tokens
        added to the formatted chat)."""
        self.sampled += len(chats)
        if not chats:
            return []
        vllm = _vllm()
        llm = engine(self.model, self.cfg, self.seed)
        if id(llm) in _ASLEEP:
            llm.wake_up()
            _ASLEEP.discard(id(llm))
        push_weights(llm, self.model)
        params = [
            vllm.SamplingParams(
                temperature=self.cfg.temperature,
                top_p=self.cfg.top_p,
                top_k=-1,
                max_tokens=max_new_tokens,
                seed=seed,
            )
            for seed in seeds
        ]
        inputs = [
            {
                "prompt_token_ids": self.tok(
                    chat_prompt(self.tok, *chat), add_special_tokens=False
                ).input_ids
            }
            for chat in chats
        ]
        outs = llm.generate(inputs, params, use_tqdm=is_main())
        if self.cfg.vllm_sleep_level:
            llm.sleep(level=self.cfg.vllm_sleep_level)
            _ASLEEP.add(id(llm))
        return [o.outputs[0].text.strip() for o in outs]
