"""Workflows, one file each (online, offline, reward models, evaluation), the stages they
share, start-up checks, the tracked run around them and resumption of online runs."""
