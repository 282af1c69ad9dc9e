"""The process a run lives in: its heap and collector (memory.py), its stop signals
(signals.py) and the host's libraries and CPU (host.py). Nothing here is SSO; everything
after `config` may use it."""
