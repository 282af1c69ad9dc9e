"""LLM judges (MT-Bench-style pairwise preference and 1-10 grading) behind one chat
backend interface: a remote OpenAI-compatible server or the local policy."""
from .llm import ChatBackend, JudgeError, LLMJudge
from .openai_backend import OpenAIBackend
from .policy_backend import PolicyBackend

__all__ = ["ChatBackend", "JudgeError", "LLMJudge", "OpenAIBackend", "PolicyBackend"]
