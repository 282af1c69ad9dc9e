"""`python tests/faults/nan_loss.py <k> [sso_exp arguments]`: run `python -m sso_exp` with
the policy's loss made NaN from its k-th training on (iteration k of an online run), as a
fault-injection test's subject: a fault no config value shows (a bug, a broken kernel)."""

import runpy
import sys

from sso_exp.training.policy_module import SSOPolicyModule

from_fit, fits = int(sys.argv[1]), 0
real_step = SSOPolicyModule.training_step


def training_step(self, batch, batch_idx):
    global fits
    if batch_idx == 0 and self.trainer.global_step == 0:  # a new fit's first step
        fits += 1
    loss = real_step(self, batch, batch_idx)
    return loss * float("nan") if fits >= from_fit else loss


SSOPolicyModule.training_step = training_step
sys.argv = ["sso_exp", *sys.argv[2:]]
runpy.run_module("sso_exp", run_name="__main__", alter_sys=True)
