"""The translate stage."""
