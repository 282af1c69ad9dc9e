"""mode=eval and eval.every_iteration, judged by a fake OpenAI-compatible server on
127.0.0.1 that speaks the real chat-completions JSON."""

import json
import re

import pytest
from fake_openai import FakeOpenAI
from test_online import only_run, out

from conftest import FIXTURES, TINY_ARGS, compose_cfg, run_cli, tracked_runs

KEY = "sk-eval-test-never-logged-31337"
SMALL = [
    "eval.alpaca.limit=2",
    "eval.mt_bench.limit=2",
    "eval.gsm8k.limit=2",
    "eval.alpaca.max_new_tokens=6",
    "eval.mt_bench.max_new_tokens=6",
    "eval.gsm8k.gen_kwargs.max_gen_toks=6",
    "eval.batch_size=4",
    f"data.dir={FIXTURES / 'data'}",
]


def judge_reply(messages):
    """Prefers the first answer shown; grades every answer 7."""
    return "Rating: [[7]]" if "Rating" in messages[0]["content"] else "Fine. [[A]]"


def openai_args(server):
    return [
        "eval/judge=openai",
        f"eval.judge.base_url={server.base_url}",
        "eval.judge.model=judge-model",
        "eval.judge.backoff_s=0.01",
        "eval.judge.max_retries=1",
    ]


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    even = {"m": -0.69, "M": -0.69}  # AlpacaEval's annotator: m and M equally likely
    with FakeOpenAI(judge_reply, top_logprobs=lambda m: even) as fake:
        yield fake


def test_eval_mode_with_an_openai_judge(tmp_path, server):
    proc = run_cli(
        tmp_path,
        "mode=eval",
        "model=tiny",
        *SMALL,
        *openai_args(server),
        f"data.pairs={FIXTURES / 'sso_records.json'}",
    )
    assert proc.returncode == 0, out(proc)[-3000:]
    client, run = only_run(tmp_path)
    m = run.data.metrics
    # signal: "[[A]]" in both orders is a tie; alpaca: m and M even: 50%; every grade is 7
    assert m["signal/accuracy"] == 50 and m["alpaca/win_rate"] == 50 and m["alpaca/n"] == 2
    assert (
        m["mt_bench/score"] == 7 and m["mt_bench/n"] == 4 and "gsm8k/exact_match_strict_match" in m
    )
    rows = (tmp_path / "run/eval_alpaca.jsonl").read_text().splitlines()
    assert m["alpaca/budget_hits"] == sum(json.loads(r)["cut"] for r in rows)  # cut at 6 tokens
    assert server.requests[0]["body"]["model"] == "judge-model"
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    for task in ("signal", "alpaca", "mt_bench", "gsm8k"):
        assert (tmp_path / f"run/eval_{task}.jsonl").is_file()
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"eval_alpaca.jsonl", "eval_mt_bench.jsonl"} <= arts
    logged = out(proc) + (tmp_path / "run/config.yaml").read_text() + json.dumps(run.data.params)
    assert KEY not in logged


def test_a_failing_judge_keeps_earlier_tasks(tmp_path, server):
    server.failures = ["500"] * 50
    proc = run_cli(
        tmp_path,
        "mode=eval",
        "model=tiny",
        *SMALL,
        *openai_args(server),
        "eval.tasks=[gsm8k,alpaca]",
    )
    assert proc.returncode == 2 and "eval task 'alpaca'" in out(proc) and "HTTP 500" in out(proc)
    assert KEY not in out(proc)
    _, run = only_run(tmp_path)
    assert run.info.status == "FAILED" and "gsm8k/exact_match_strict_match" in run.data.metrics
    assert (tmp_path / "run/eval_gsm8k.jsonl").is_file()


def test_every_iteration_judges_each_iterations_pairs(tmp_path, server):
    proc = run_cli(
        tmp_path,
        *TINY_ARGS,
        "eval.every_iteration=true",
        "eval.tasks=[signal,alpaca]",
        *SMALL,
        *openai_args(server),
    )
    assert proc.returncode == 0, out(proc)[-3000:]
    client, run = only_run(tmp_path)
    hist = client.get_metric_history(run.info.run_id, "signal/accuracy")
    assert [h.step for h in hist] == [1, 2] and all(h.value == 50 for h in hist)
    assert (tmp_path / "run/iter_2/eval_signal.jsonl").is_file()


def test_rm_judge_needs_a_checkpoint(tmp_path):
    proc = run_cli(tmp_path, "mode=eval", "model=tiny", "eval/judge=rm", *SMALL)
    assert proc.returncode == 2 and "rm.checkpoint" in out(proc)


def test_unknown_task_is_refused(tmp_path):
    proc = run_cli(tmp_path, "mode=eval", "model=tiny", "eval.tasks=[signal,bleu]", *SMALL)
    assert proc.returncode == 2 and "unknown tasks ['bleu']" in out(proc)


def test_every_task_has_a_runner():
    from sso_exp.config.evaluation import TASKS
    from sso_exp.pipeline.evaluate import RUNNERS
    from sso_exp.pipeline.inputs import TASK_FILES

    assert set(RUNNERS) == set(TASKS) == set(TASK_FILES)


def test_a_fixed_local_judge_also_scores_human_pairs(tmp_path):
    proc = run_cli(
        tmp_path,
        "mode=eval",
        "model=tiny",
        "eval/judge_model=tiny",
        "eval.tasks=[signal,human_pairs]",
        "eval.human_pairs.limit=3",
        *SMALL,
        f"data.pairs={FIXTURES / 'sso_records.json'}",
    )
    assert proc.returncode == 0, out(proc)[-3000:]
    _, run = only_run(tmp_path)
    m = run.data.metrics
    # the weighted annotator reads a local judge's token probabilities: it always answers
    assert (m["human_pairs/n"], m["human_pairs/unparsed"], m["signal/unparsed"]) == (3, 0, 0)
    assert 0 < m["human_pairs/accuracy"] < 100 and "human_pairs/accuracy_se" in m
    assert "judge acc (human pairs)" in out(proc)


def test_a_judge_model_needs_the_policy_judge(tmp_path, server):
    proc = run_cli(
        tmp_path, "mode=eval", "model=tiny", "eval/judge_model=tiny", *SMALL, *openai_args(server)
    )
    assert proc.returncode == 2 and "eval.judge_model" in out(proc), out(proc)[-2000:]
    assert tracked_runs(tmp_path) == 0 and not server.requests


VERIFIED = ("principle=verifiable", "eval/judge=verifier", "eval.every_iteration=true")


def test_the_checker_judges_each_iterations_verifiable_pairs(tmp_path):
    proc = run_cli(tmp_path, *TINY_ARGS, *VERIFIED, "eval.tasks=[signal]")
    assert proc.returncode == 0, out(proc)[-3000:]
    client, run = only_run(tmp_path)
    for key in ("signal/verified_accuracy", "signal/chosen_follows", "signal/raw_follows"):
        hist = client.get_metric_history(run.info.run_id, key)
        assert [h.step for h in hist] == [1, 2] and all(0 <= h.value <= 100 for h in hist)
        assert len(client.get_metric_history(run.info.run_id, f"{key}_se")) == 2
        assert run.data.metrics[f"{key}_ci_low"] <= run.data.metrics[f"{key}_ci_high"]
    assert any(k.startswith("signal/family/") for k in run.data.metrics)
    rows = [json.loads(line) for line in (tmp_path / "run/iter_2/eval_signal.jsonl").open()]
    pairs = (tmp_path / "run/iter_2/pairs.jsonl").read_text().splitlines()
    assert len(rows) == len(pairs) and all("constraints" in json.loads(p) for p in pairs)


def test_the_verifier_without_verifiable_principles_is_refused_at_start_up(tmp_path):
    proc = run_cli(tmp_path, "model=tiny", "eval/judge=verifier", "eval.every_iteration=true",
                   "eval.tasks=[signal]")  # fmt: skip
    assert proc.returncode == 2, out(proc)[-2000:]
    assert "needs pairs written under verifiable principles" in out(proc)
    assert "Traceback" not in out(proc) and not (tmp_path / "run/iter_1").exists()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (("eval.tasks=[signal,alpaca]",), "cannot judge ['alpaca']"),
        (("eval.tasks=[signal]", "principle.verifiable.0.good_constraint.id=nope"),
         "principle.verifiable[0].good_constraint.id"),
        (("eval.tasks=[ifeval]", "data.prompts=ifeval_input_data.jsonl"),
         "are IFEval prompts"),
    ],
)  # fmt: skip
def test_bad_verifier_setups_are_refused_before_any_work(tmp_path, overrides, message):
    from sso_exp.errors import ConfigError
    from sso_exp.pipeline.inputs import check_inputs

    data = tmp_path / "data"
    data.mkdir()
    (data / "ifeval_input_data.jsonl").write_text('{"key": 1, "prompt": "Say hi in caps."}\n')
    alpaca = "alpaca_eval_gpt4_turbo.jsonl"
    (data / alpaca).write_bytes((FIXTURES / "data" / alpaca).read_bytes())
    cfg = compose_cfg(tmp_path, "model=tiny", f"data.dir={data}", *VERIFIED, *overrides)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_inputs(cfg)


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (("eval.gsm8k.lm_eval_task=gsm8k_nope",), "ConfigError",
         "config key 'eval.gsm8k.lm_eval_task': lm-evaluation-harness has no task 'gsm8k_nope'"),
        (("eval.gsm8k.path=missing.jsonl",), "ConfigError",
         "config key 'eval.gsm8k.path': missing.jsonl not found"),
        (("eval.gsm8k.fewshot_path=bad.jsonl",), "DataError", "bad.jsonl:2: invalid JSON"),
        (("eval.tasks=[gpqa]", "eval.gpqa.path=empty.csv"), "DataError",
         "needs a header row and at least one data row"),
    ],
)  # fmt: skip
def test_bad_benchmark_setups_are_refused_before_any_work(tmp_path, overrides, error, message):
    from sso_exp import errors
    from sso_exp.pipeline.inputs import check_inputs

    (tmp_path / "bad.jsonl").write_text('{"question": "q", "answer": "#### 1"}\nnot json\n')
    (tmp_path / "empty.csv").write_text("Question,Correct Answer\n")
    cfg = compose_cfg(
        tmp_path, "mode=eval", "model=tiny", "eval.tasks=[gsm8k]", f"data.dir={FIXTURES / 'data'}",
        *(o.replace("=bad", f"={tmp_path}/bad").replace("=empty", f"={tmp_path}/empty")
          for o in overrides),
    )  # fmt: skip
    with pytest.raises(getattr(errors, error), match=re.escape(message)):
        check_inputs(cfg)


def test_a_limit_of_0_is_refused_naming_the_key(tmp_path):
    proc = run_cli(tmp_path, "mode=eval", "model=tiny", "eval.tasks=[gpqa]", "eval.gpqa.limit=0")
    assert proc.returncode == 2 and "Traceback" not in out(proc)
    assert "config key 'eval.gpqa.limit': must be >= 1" in out(proc)
