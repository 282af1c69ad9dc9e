"""Every option of every config group composes and validates; bad values name their key."""

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from omegaconf.errors import OmegaConfBaseException

from conftest import CONF, compose_cfg
from sso_exp.errors import ConfigError

# presets (global packages) are tested on their own: experiment in test_presets
GROUPS = sorted(
    p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("experiment", "hparams_search")
)


@pytest.mark.parametrize(
    "group,option",
    [
        (g, f.stem)
        for g in GROUPS
        for f in sorted((CONF / g).glob("*.yaml"))
        if not f.stem.startswith("_")
    ],
)
def test_every_option_composes(tmp_path, group, option):
    cfg = compose_cfg(tmp_path, f"{group}={option}")
    assert getattr(cfg, group) is not None


def test_optuna_search_composes_with_its_metric_sweeper_and_space(tmp_path):
    cfg = compose_cfg(tmp_path, "hparams_search=optuna")
    assert cfg.optimized_metric == "train/rewards/accuracies"
    hydra_cfg = HydraConfig.get()  # what compose_cfg composed: the sweeper it swapped in
    assert (
        hydra_cfg.sweeper._target_.endswith("OptunaSweeper") and hydra_cfg.mode.name == "MULTIRUN"
    )
    assert set(hydra_cfg.sweeper.params) == {"loss.g_beta", "loss.w_alpha", "loss.beta"}


def test_option_files_hold_only_what_they_change(tmp_path):
    """No option restates a default of the schema: each value lives once."""
    from omegaconf import OmegaConf

    from sso_exp.config import SSOConfig

    schema = OmegaConf.structured(SSOConfig)
    for group in GROUPS:
        node = OmegaConf.select(schema, group)
        for path in (CONF / group).glob("*.yaml"):
            option = OmegaConf.load(path)
            for key, value in OmegaConf.to_container(option).items():
                if key == "defaults" or node is None or key not in node:
                    continue
                default = OmegaConf.to_container(node)[key] if OmegaConf.is_config(node) else None
                assert value != default, f"{path.relative_to(CONF)}: '{key}' restates the default"


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
        ("trainer.malloc_trim_threshold_kb=4194304", "trainer.malloc_trim_threshold_kb"),
    ],
)
def test_bad_values_name_their_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key):
        compose_cfg(tmp_path, override)


def test_bf16_true_is_one_process(tmp_path):
    with pytest.raises(ConfigError, match="trainer.precision.*one process"):
        compose_cfg(tmp_path, "trainer=ddp", "trainer.precision=bf16-true")
    cfg = compose_cfg(tmp_path, "trainer=fast")
    assert (cfg.trainer.precision, cfg.trainer.compile) == ("bf16-true", True)


def test_wrong_type_names_key(tmp_path):
    with pytest.raises(
        (OmegaConfBaseException, ConfigCompositionException), match="schedule.iterations"
    ):
        compose_cfg(tmp_path, "schedule.iterations=lots")


def test_fsdp_strategy_is_built_from_its_config(tmp_path):
    from hydra.utils import instantiate
    from pytorch_lightning.strategies import FSDPStrategy

    cfg = compose_cfg(tmp_path, "trainer=fsdp")
    assert isinstance(instantiate(cfg.trainer.strategy), FSDPStrategy)
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("gpu", "bf16-mixed")
