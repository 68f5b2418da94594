"""The jobs: one function per workflow rule and per console command, over the job's settings
and the paths its rule (or the command) gives; each opens its inputs, calls the rooms below and
writes its outputs. What a rule knows about a file (its run, image, tile) arrives as an
argument, never parsed out of a path, so every job also runs from Python (tests, notebooks)
without Snakemake.

``runner``: a job's log and errors. ``preflight``: checks before any job. ``datasets``: demo
scene, class statistics, patch index, training canvas. ``training``: one run's training.
``prediction``: predicting a run's tiles and mapping new imagery. ``reporting``: scores,
tables, conclusions, figures.
"""
