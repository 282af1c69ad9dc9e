"""Workflows, one file each: online SSO (offline and reward-model modes come next)."""
