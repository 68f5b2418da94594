# Comparison of the cases: tables and figures.


rule summary:
    """The study's tables: training (Table 2), evaluation (Table 3) and per-class scores."""
    input:
        histories=expand("{case_dir}/history.csv", case_dir=map(case_dir, CASES)),
        confusions=expand(
            "{case_dir}/{image}/confusion.csv", case_dir=map(case_dir, CASES), image=IMAGES
        ),
    output:
        training=report(
            "results/summary/training.csv",
            caption="../report/training_table.rst",
            category="4. Comparison",
            subcategory="tables",
            labels={"table": "training (Table 2)"},
        ),
        training_md="results/summary/training.md",
        evaluation=report(
            "results/summary/evaluation.csv",
            caption="../report/evaluation_table.rst",
            category="4. Comparison",
            subcategory="tables",
            labels={"table": "evaluation (Table 3)"},
        ),
        evaluation_md="results/summary/evaluation.md",
        per_class=report(
            "results/summary/per_class.csv",
            caption="../report/per_class_table.rst",
            category="4. Comparison",
            subcategory="tables",
            labels={"table": "per class"},
        ),
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
        report(
            "results/summary/confusion_{image}.png",
            caption="../report/confusion.rst",
            category="4. Comparison",
            subcategory="confusion matrices",
            labels={"image": "{image}"},
        ),
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
        report(
            "results/summary/metrics_vs_patch_size.png",
            caption="../report/metrics_vs_patch_size.rst",
            category="4. Comparison",
            subcategory="metrics vs patch size",
            labels={"figure": "metrics vs patch size"},
        ),
    log:
        "results/logs/summary_figure.log",
    benchmark:
        "results/benchmarks/summary_figure.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/summary_figure.py"
