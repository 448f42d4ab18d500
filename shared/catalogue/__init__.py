"""Catalogues: each list of stages, translators and metrics declared once."""
