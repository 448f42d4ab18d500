"""Helpers of the Snakemake workflow (workflow/Snakefile): the study's units as jobs, their
resources, and the one command each job runs (in the venv, Docker or Apptainer)."""
