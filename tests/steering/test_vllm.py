"""generation=vllm without a GPU: a stand-in `vllm` module checks what sso-exp hands the
engine (the policy's folder, its current weights before every stage, token ids, sampling
parameters); without vllm installed the CLI stops with a clear message before any work."""

import sys
import types

import torch

from conftest import run_cli
from sso_exp.config import GenerationConfig
from sso_exp.data.encoding import chat_prompt
from sso_exp.steering import vllm


class FakeLLM:
    def __init__(self, model, **kwargs):
        self.path, self.kwargs, self.loaded, self.calls = model, kwargs, [], []
        self.events = []
        runner = types.SimpleNamespace(model=types.SimpleNamespace(load_weights=self._load))
        self.llm_engine = types.SimpleNamespace(
            model_executor=types.SimpleNamespace(
                driver_worker=types.SimpleNamespace(
                    worker=types.SimpleNamespace(model_runner=runner)
                )
            )
        )

    def sleep(self, level):
        self.events.append(f"sleep{level}")

    def wake_up(self):
        self.events.append("wake")

    def _load(self, weights):
        self.loaded.append({k: v.clone() for k, v in weights})

    def generate(self, inputs, params, use_tqdm=True):
        self.calls.append((inputs, params))
        out = types.SimpleNamespace(text=" sampled ")
        return [types.SimpleNamespace(outputs=[out]) for _ in inputs]


def test_weights_are_pushed_before_every_stage(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    model.save_pretrained(tmp_path / "policy")
    monkeypatch.setattr(model, "name_or_path", str(tmp_path / "policy"))
    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = FakeLLM, lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(vllm, "_ENGINES", {})
    monkeypatch.setattr(vllm, "_ASLEEP", set())
    gen = GenerationConfig(backend="vllm", temperature=0.6, top_p=0.9)
    sampler = vllm.VLLMSampler(model, tok, gen, seed=3)
    assert sampler.sample([(None, "Hi")], 7, "test", [11]) == ["sampled"]
    with torch.no_grad():
        model.model.norm.weight.add_(1.0)  # "training" between two stages
    try:
        sampler.sample([(None, "a"), ("Be brief.", "b")], 7, "test", [12, 13])
    finally:
        with torch.no_grad():
            model.model.norm.weight.sub_(1.0)
    llm = next(iter(vllm._ENGINES.values()))
    assert llm.path == str(tmp_path / "policy") and len(llm.loaded) == 2
    norm = "model.norm.weight"
    assert torch.equal(llm.loaded[1][norm], llm.loaded[0][norm] + 1)
    inputs, params = llm.calls[0]
    ids = tok(chat_prompt(tok, None, "Hi"), add_special_tokens=False).input_ids
    assert inputs == [{"prompt_token_ids": ids}]
    assert params == [{"temperature": 0.6, "top_p": 0.9, "top_k": -1, "max_tokens": 7, "seed": 11}]
    assert [p["seed"] for p in llm.calls[1][1]] == [12, 13]  # each chat its own stream
    assert llm.kwargs["enable_sleep_mode"] and sampler.sampled == 3
    assert llm.events == ["sleep1", "wake", "sleep1"]  # asleep while training runs


def test_missing_vllm_stops_before_any_work(tmp_path):
    out = run_cli(tmp_path, "model=tiny", "generation=vllm")
    assert out.returncode == 2
    text = out.stdout + out.stderr
    assert "vllm is not installed" in text and "generation=hf" in text
    assert not (tmp_path / "run" / "iter_1").exists()
