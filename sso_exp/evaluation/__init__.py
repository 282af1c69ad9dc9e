"""Evaluation: the benchmark tasks (AlpacaEval-, MT-Bench- and GSM8K-style, SSO's own
signal accuracy), their judges and statistics (win rates, intervals)."""
