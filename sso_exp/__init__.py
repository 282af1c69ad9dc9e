"""sso-exp: Self-Steering Optimization experiments (principles -> generation -> data ->
losses -> Lightning modules -> pipeline -> tracking)."""

__version__ = "0.1.0"
