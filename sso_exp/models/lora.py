"""LoRA through peft: adapters train, the base weights stay frozen; reference log-probs are
scored before the adapters exist, so there is no second copy of the model."""

from __future__ import annotations

from transformers import PreTrainedModel

from ..config import LoraSettings


def add_lora(model: PreTrainedModel, cfg: LoraSettings):
    """LoRA adapters on `model` (in place; only they train). Reference log-probs are scored
    before they exist, i.e. under the base weights: no second copy of the model."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        model,
        LoraConfig(
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            task_type="CAUSAL_LM",
            target_modules=list(cfg.target_modules),
        ),
    )


def merge_lora(peft_model) -> PreTrainedModel:
    """Fold the adapters into the base weights (so what is saved loads anywhere, and the next
    iteration starts from the trained policy) and make every weight trainable again."""
    model = peft_model.merge_and_unload()
    model.requires_grad_(True)
    return model
