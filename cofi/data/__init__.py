"""Data: JSONL records, prompts, the embedded world and the chat suites made here."""
