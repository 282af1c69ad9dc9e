"""Every option of every config group composes and validates; bad values name their key."""
import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from omegaconf.errors import OmegaConfBaseException

from conftest import CONF, compose_cfg
from sso_exp.config import ConfigError

# presets (global packages) are tested on their own: experiment in test_presets
GROUPS = sorted(p.name for p in CONF.iterdir()
                if p.is_dir() and p.name not in ("experiment", "hparams_search"))


@pytest.mark.parametrize("group,option", [
    (g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))
    if not f.stem.startswith("_")])
def test_every_option_composes(tmp_path, group, option):
    node = getattr(compose_cfg(tmp_path, f"{group}={option}"), group)
    if hasattr(node, "name"):
        assert node.name == option


def test_optuna_search_composes_with_its_metric_sweeper_and_space(tmp_path):
    cfg = compose_cfg(tmp_path, "hparams_search=optuna")
    assert cfg.optimized_metric == "train/rewards/accuracies"
    hydra_cfg = HydraConfig.get()  # what compose_cfg composed: the sweeper it swapped in
    assert hydra_cfg.sweeper._target_.endswith("OptunaSweeper") and hydra_cfg.mode.name == "MULTIRUN"
    assert set(hydra_cfg.sweeper.params) == {"loss.g_beta", "loss.w_alpha", "loss.beta"}


def test_defaults_are_the_papers(tmp_path):
    cfg = compose_cfg(tmp_path)
    assert cfg.model.name == "smollm2" and cfg.loss.name == "ipo" and cfg.mode.name == "online"
    assert (cfg.loss.use_g, cfg.loss.use_w, cfg.loss.w_detach) == (True, True, False)
    assert (cfg.loss.beta, cfg.loss.g_beta, cfg.loss.w_alpha, cfg.loss.ftx) == (0.1, 0.1, 0.5, 0.0)
    assert (cfg.schedule.temperature, cfg.schedule.top_p) == (0.7, 0.8)
    assert (cfg.principle.num_features, cfg.principle.concision_prob) == (2, 0.2)
    assert len(cfg.principle.features) == 8 and not cfg.model.trust_remote_code


def test_unknown_key_fails(tmp_path):
    with pytest.raises(ConfigCompositionException, match="loss.gbeta"):
        compose_cfg(tmp_path, "loss.gbeta=0.2")


def test_unknown_option_fails(tmp_path):
    with pytest.raises(ConfigCompositionException, match="loss"):
        compose_cfg(tmp_path, "loss=kto")


@pytest.mark.parametrize("override,key", [
    ("loss.beta=-1", "loss.beta"), ("loss.w_alpha=1.5", "loss.w_alpha"),
    ("schedule.top_p=0", "schedule.top_p"), ("schedule.iterations=0", "schedule.iterations"),
    ("mode.on_empty=maybe", "mode.on_empty"), ("model.source=hub", "model.source"),
    ("principle.num_features=8", "principle.num_features"),
    ("trainer.precision=bf15", "trainer.precision"), ("generation.backend=tgi", "generation.backend"),
    ("model.lora.r=0", "model.lora.r"), ("trainer.logps_chunk=-1", "trainer.logps_chunk"),
    ("trainer.malloc_trim_threshold_kb=4194304", "trainer.malloc_trim_threshold_kb")])
def test_bad_values_name_their_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key):
        compose_cfg(tmp_path, override)


def test_bf16_true_is_one_process(tmp_path):
    with pytest.raises(ConfigError, match="trainer.precision.*one process"):
        compose_cfg(tmp_path, "trainer=ddp", "trainer.precision=bf16-true")
    cfg = compose_cfg(tmp_path, "trainer=fast")
    assert (cfg.trainer.precision, cfg.trainer.compile) == ("bf16-true", True)


def test_wrong_type_names_key(tmp_path):
    with pytest.raises(OmegaConfBaseException, match="schedule.iterations"):
        compose_cfg(tmp_path, "schedule.iterations=lots")


def test_fsdp_strategy_is_built_from_its_config(tmp_path):
    from hydra.utils import instantiate
    from pytorch_lightning.strategies import FSDPStrategy
    cfg = compose_cfg(tmp_path, "trainer=fsdp")
    assert isinstance(instantiate(cfg.trainer.strategy), FSDPStrategy)
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("gpu", "bf16-mixed")
