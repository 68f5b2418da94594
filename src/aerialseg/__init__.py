"""Patch-based semantic segmentation of large aerial images.

The package holds all of the workflow's logic as plain functions over paths, numpy arrays
and torch tensors; the Snakemake rules only wire files to these functions.
"""

__version__ = "0.1.0"
