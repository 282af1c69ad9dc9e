"""Every option of every config group composes and validates; bad values name their key."""

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from conftest import CONF, compose_cfg
from sso_exp.config import (
    FilterConfig,
    GenerationConfig,
    LossConfig,
    ModeConfig,
    ModelConfig,
    ObjectiveConfig,
    PrincipleConfig,
    ScheduleConfig,
    TrackingConfig,
    TrainerConfig,
)
from sso_exp.errors import ConfigError
from sso_exp.training.callbacks import CompiledLayers, MasterWeights
from sso_exp.training.fit import callbacks

# presets (global packages) are tested on their own: experiment in test_presets; local/
# (the cluster values submitit_slurm merges) in test_cluster
GROUPS = sorted(  # folders of options, nested ones (eval/judge_model) included
    {
        str(p.parent.relative_to(CONF))
        for p in CONF.glob("*/**/*.yaml")
        if p.parts[len(CONF.parts)] not in ("experiment", "hparams_search", "local")
    }
)


@pytest.mark.parametrize(
    "group,option",
    [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))],
)
def test_every_option_composes_and_validates(tmp_path, group, option):
    compose_cfg(tmp_path, f"{group}={option}")  # raises on a bad key, type or range


def test_optuna_search_composes_with_its_metric_sweeper_and_space(tmp_path):
    cfg = compose_cfg(tmp_path, "hparams_search=optuna")
    assert cfg.optimized_metric == "train/rewards/accuracies"
    hydra_cfg = HydraConfig.get()  # what compose_cfg composed: the sweeper it swapped in
    assert (
        hydra_cfg.sweeper._target_.endswith("OptunaSweeper") and hydra_cfg.mode.name == "MULTIRUN"
    )
    assert set(hydra_cfg.sweeper.params) == {"loss.g_beta", "loss.w_alpha", "loss.beta"}


SCHEMAS = {
    "model": ModelConfig,
    "generator": ModelConfig,
    "eval/judge_model": ModelConfig,
    "principle": PrincipleConfig,
    "generation": GenerationConfig,
    "filter": FilterConfig,
    "loss": LossConfig,
    "objective": ObjectiveConfig,
    "schedule": ScheduleConfig,
    "trainer": TrainerConfig,
    "mode": ModeConfig,
    "tracking": TrackingConfig,
}
# Hydra's launchers: each option its plugin's schema
LAUNCHERS = {"submitit_local": LocalQueueConf, "submitit_slurm": SlurmQueueConf}


def test_every_group_has_its_schema():
    assert set(SCHEMAS) | {"hydra/launcher"} == set(GROUPS)
    assert {p.stem for p in (CONF / "hydra/launcher").glob("*.yaml")} == set(LAUNCHERS)


@pytest.mark.parametrize("path", sorted(CONF.glob("*/**/*.yaml")), ids=lambda p: p.stem)
def test_option_files_hold_only_what_they_change(path):
    """No option restates a default of the schema, at any depth: each value lives once."""
    group = str(path.parent.relative_to(CONF))
    node = SCHEMAS.get(group) or (LAUNCHERS[path.stem] if group == "hydra/launcher" else None)
    if node is None:
        return  # presets and searches set other groups' keys
    schema = OmegaConf.to_container(OmegaConf.structured(node))
    option = OmegaConf.to_container(OmegaConf.load(path))
    option.pop("defaults", None)
    defaults = flatten_dict(schema)
    for key, value in flatten_dict(option).items():
        assert defaults.get(key, "<unset>") != value, f"{path}: '{key}' restates the default"


def flatten_dict(node, prefix=""):
    """Dotted keys of nested dicts."""
    if not isinstance(node, dict):
        return {prefix: node}
    out = {}
    for key, value in node.items():
        out.update(flatten_dict(value, f"{prefix}.{key}" if prefix else key))
    return out


def test_choices_name_the_base_loss_mode_and_backend(tmp_path):
    cfg = compose_cfg(
        tmp_path, "loss=dpo", "mode=offline", "generation=vllm", "filter=logprob", "objective=v2"
    )
    assert (
        cfg.loss.name,
        cfg.mode.name,
        cfg.generation.backend,
        cfg.filter.name,
        cfg.objective.name,
    ) == ("dpo", "offline", "vllm", "logprob", "v2")


def test_unknown_key_fails(tmp_path):
    with pytest.raises(ConfigCompositionException, match="loss.gbeta"):
        compose_cfg(tmp_path, "loss.gbeta=0.2")


def test_unknown_option_fails(tmp_path):
    with pytest.raises(ConfigCompositionException, match="loss"):
        compose_cfg(tmp_path, "loss=kto")


@pytest.mark.parametrize(
    "override,key",
    [
        ("loss.beta=-1", "loss.beta"),
        ("loss.w_alpha=1.5", "loss.w_alpha"),
        ("generation.top_p=0", "generation.top_p"),
        ("schedule.iterations=0", "schedule.iterations"),
        ("mode.on_empty=maybe", "mode.on_empty"),
        ("model.source=hub", "model.source"),
        ("principle.num_features=8", "principle.num_features"),
        ("trainer.precision=bf15", "trainer.precision"),
        ("generation.backend=tgi", "generation.backend"),
        ("model.lora.r=0", "model.lora.r"),
        ("trainer.logps_chunk=-1", "trainer.logps_chunk"),
        ("trainer.onednn_primitive_cache=-1", "trainer.onednn_primitive_cache"),
        ("trainer.malloc_trim_threshold_kb=4194304", "trainer.malloc_trim_threshold_kb"),
        ("eval.mt_bench.temperatures.writing=-0.1", "eval.mt_bench.temperatures.writing"),
        ("eval.mt_bench.judge_max_new_tokens=0", "eval.mt_bench.judge_max_new_tokens"),
    ],
)
def test_bad_values_name_their_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key):
        compose_cfg(tmp_path, override)


def test_bf16_true_is_one_process(tmp_path):
    with pytest.raises(ConfigError, match="trainer.precision.*one process"):
        compose_cfg(tmp_path, "trainer=ddp", "trainer.precision=bf16-true")
    with pytest.raises(ConfigError, match="trainer.precision.*unsharded"):
        compose_cfg(tmp_path, "trainer=fsdp", "trainer.devices=1", "trainer.precision=bf16-true")
    cfg = compose_cfg(tmp_path, "trainer=fast")
    kinds = {type(c) for c in callbacks(cfg.trainer)}  # fast: fp32 masters, compiled layers
    assert {MasterWeights, CompiledLayers} <= kinds


def test_wrong_type_names_key(tmp_path):
    with pytest.raises(
        (OmegaConfBaseException, ConfigCompositionException), match="schedule.iterations"
    ):
        compose_cfg(tmp_path, "schedule.iterations=lots")


def test_fsdp_strategy_is_built_from_its_config(tmp_path):
    from hydra.utils import instantiate
    from pytorch_lightning.strategies import ModelParallelStrategy

    cfg = compose_cfg(tmp_path, "trainer=fsdp")
    assert isinstance(instantiate(cfg.trainer.strategy), ModelParallelStrategy)


@pytest.mark.parametrize(
    "override", ["schedule.optimizer.lr=nan", "schedule.max_grad_norm=nan", "loss.simpo_gamma=inf"]
)
def test_a_non_finite_number_is_refused_naming_its_key(tmp_path, override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"config key '{key}': .* is not a finite number"):
        compose_cfg(tmp_path, override)
