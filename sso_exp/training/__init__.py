"""Training: losses (pure functions of log-probs), objectives, the Lightning modules, their
optimizer and schedule, callbacks, and `fit`."""
