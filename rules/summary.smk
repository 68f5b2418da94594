# Comparison of the runs: tables, conclusions and figures.


rule summary:
    """The study's tables: training (Table 2), evaluation (Table 3, with the test ECE) and
    per-class scores, over the repeats; every single run; Tables 1-3 in the study's own
    layout; the calibration of the cases; the settings."""
    input:
        histories=[run_file(run, "history.csv") for run in RUNS],
        confusions=[run_file(run, f"{split}/confusion.csv") for run in RUNS for split in SPLITS],
        tile_confusions=[path for run in RUNS for path in tile_files(layout.run_dir(run), "confusion.csv")],
        calibrations=[run_file(run, "calibration.csv") for run in RUNS],
        class_stats=f"{DATA}/class_stats.csv",
    output:
        training=report(
            f"{SUMMARY}/training.csv",
            caption="../report/training_table.rst",
            category="4. Comparison",
            subcategory="tables",
            labels={"table": "training (Table 2)"},
        ),
        training_md=f"{SUMMARY}/training.md",
        evaluation=report(
            f"{SUMMARY}/evaluation.csv",
            caption="../report/evaluation_table.rst",
            category="4. Comparison",
            subcategory="tables",
            labels={"table": "evaluation (Table 3)"},
        ),
        evaluation_md=f"{SUMMARY}/evaluation.md",
        per_class=report(
            f"{SUMMARY}/per_class.csv",
            caption="../report/per_class_table.rst",
            category="4. Comparison",
            subcategory="tables",
            labels={"table": "per class"},
        ),
        runs=report(
            f"{SUMMARY}/runs.csv",
            caption="../report/runs_table.rst",
            category="4. Comparison",
            subcategory="tables",
            labels={"table": "every run"},
        ),
        study_tables=f"{SUMMARY}/study_tables.md",
        tiles=report(
            f"{SUMMARY}/tiles.csv",
            caption="../report/tiles_table.rst",
            category="4. Comparison",
            subcategory="tables",
            labels={"table": "every tile"},
        ),
        calibration=report(
            f"{SUMMARY}/calibration.csv",
            caption="../report/calibration_table.rst",
            category="4. Comparison",
            subcategory="tables",
            labels={"table": "calibration"},
        ),
        calibration_md=f"{SUMMARY}/calibration.md",
        settings=report(
            f"{SUMMARY}/settings.yaml",
            caption="../report/settings.rst",
            category="4. Comparison",
            subcategory="tables",
            labels={"table": "settings"},
        ),
    params:
        settings=cfg.result_settings(config),
        runs=[(run.case.init, run.case.size, run.repeat) for run in RUNS],
        splits=SPLITS,
        tiles={split: [tile.name for tile in TILES[split]] for split in SPLITS},
    log:
        "results/logs/summary.log",
    benchmark:
        "results/benchmarks/summary.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/summary.py"


rule conclusions:
    """The study's three conclusions checked against every run, with a verdict each."""
    input:
        runs=f"{SUMMARY}/runs.csv",
        patches=[layout.PATCHES.format(size=size) for size in config["experiment"]["patch_sizes"]],
    output:
        markdown=f"{SUMMARY}/conclusions.md",
        html=report(
            f"{SUMMARY}/conclusions.html",
            caption="../report/conclusions.rst",
            category="5. Conclusions",
            labels={"document": "conclusions"},
        ),
    params:
        settings=settings("conclusions"),
    log:
        "results/logs/conclusions.log",
    benchmark:
        "results/benchmarks/conclusions.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/conclusions.py"


rule confusion_figure:
    """The row-normalised confusion matrices of all cases (repeat 1) on one image."""
    input:
        [run_file(cfg.Run(case), "{split}/confusion.csv") for case in CASES],
    output:
        report(
            f"{SUMMARY}/confusion_{{split}}.png",
            caption="../report/confusion.rst",
            category="4. Comparison",
            subcategory="confusion matrices",
            labels={"split": "{split}"},
        ),
    params:
        settings=settings("confusion_figure"),
        cases=[(case.init, case.size) for case in CASES],
    log:
        "results/logs/confusion_figure/{split}.log",
    benchmark:
        "results/benchmarks/confusion_figure/{split}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/confusion_figure.py"


rule summary_figure:
    """mIoU, F1 and overall accuracy against patch size, one line per initialisation."""
    input:
        f"{SUMMARY}/evaluation.csv",
    output:
        report(
            f"{SUMMARY}/metrics_vs_patch_size.png",
            caption="../report/metrics_vs_patch_size.rst",
            category="4. Comparison",
            subcategory="metrics vs patch size",
            labels={"figure": "metrics vs patch size"},
        ),
    params:
        settings=settings("summary_figure"),
    log:
        "results/logs/summary_figure.log",
    benchmark:
        "results/benchmarks/summary_figure.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/summary_figure.py"


rule learning_figure:
    """Validation mIoU of every run against optimiser steps and against training pixels seen."""
    input:
        [run_file(run, "history.csv") for run in RUNS],
    output:
        report(
            f"{SUMMARY}/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="4. Comparison",
            subcategory="learning curves",
            labels={"figure": "learning curves"},
        ),
    params:
        settings=settings("learning_figure"),
        runs=[(run.case.init, run.case.size, run.repeat) for run in RUNS],
    log:
        "results/logs/learning_figure.log",
    benchmark:
        "results/benchmarks/learning_figure.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/learning_figure.py"


rule reliability_figure:
    """The reliability diagram of one case on the test tiles (its repeats pooled): accuracy
    against confidence in 15 equal-width bins, with the pixels in each bin, as predicted and
    with each run's temperature."""
    input:
        reliability=lambda wc: [run_file(run, "reliability.csv") for run in RUNS if run.case.name == wc.case],
        scaled=lambda wc: [run_file(run, "reliability_scaled.csv") for run in RUNS if run.case.name == wc.case],
        calibrations=lambda wc: [run_file(run, "calibration.csv") for run in RUNS if run.case.name == wc.case],
    output:
        report(
            f"{SUMMARY}/reliability_{{case}}.png",
            caption="../report/reliability.rst",
            category="4. Comparison",
            subcategory="reliability diagrams",
            labels={"case": "{case}"},
        ),
    params:
        settings=settings("reliability_figure"),
    log:
        "results/logs/reliability_figure/{case}.log",
    benchmark:
        "results/benchmarks/reliability_figure/{case}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/reliability_figure.py"
