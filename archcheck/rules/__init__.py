"""Lint rules, one module per rule (shipped as archcheck.rules)."""
