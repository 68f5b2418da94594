# Comparison of the cases: tables and figures.


rule summary:
    """The study's tables: training (Table 2), evaluation (Table 3) and per-class scores."""
    input:
        histories=expand("{case_dir}/history.csv", case_dir=map(case_dir, CASES)),
        confusions=expand(
            "{case_dir}/{image}/confusion.csv", case_dir=map(case_dir, CASES), image=IMAGES
        ),
    output:
        training="results/summary/training.csv",
        training_md="results/summary/training.md",
        evaluation="results/summary/evaluation.csv",
        evaluation_md="results/summary/evaluation.md",
        per_class="results/summary/per_class.csv",
    log:
        "results/logs/summary.log",
    benchmark:
        "results/benchmarks/summary.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/summary.py"


rule confusion_figure:
    """The row-normalised confusion matrices of all cases on one image."""
    input:
        expand("{case_dir}/{{image}}/confusion.csv", case_dir=map(case_dir, CASES)),
    output:
        "results/summary/confusion_{image}.png",
    log:
        "results/logs/confusion_figure/{image}.log",
    benchmark:
        "results/benchmarks/confusion_figure/{image}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/confusion_figure.py"


rule summary_figure:
    """mIoU, F1 and overall accuracy against patch size, one line per initialisation."""
    input:
        "results/summary/evaluation.csv",
    output:
        "results/summary/metrics_vs_patch_size.png",
    log:
        "results/logs/summary_figure.log",
    benchmark:
        "results/benchmarks/summary_figure.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/summary_figure.py"
