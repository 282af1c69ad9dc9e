"""Data: input files, the authors' record format, human preference pairs, tokenization and
training batches."""
