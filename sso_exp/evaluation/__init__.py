"""Evaluation metrics as pure functions: AlpacaEval-style win rates and GSM8K exact match."""
