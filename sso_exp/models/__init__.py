"""Models: loading (offline, safetensors), LoRA, devices and autocast, log-probs, rewards
and the one generate loop."""
