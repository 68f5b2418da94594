# Training: one job per case ({init}_p{size}), on the GPU when there is one.


rule train:
    """Train DeepLabV3+ on the patches of one size, from ImageNet weights or from scratch."""
    input:
        image=config["data"]["train"]["image"],
        label=config["data"]["train"]["label"],
        patches="results/patches/p{size}.csv",
        weights="results/data/class_weights.json",
    output:
        model="results/cases/{init}_p{size}/model.pt",
        history="results/cases/{init}_p{size}/history.csv",
        last="results/cases/{init}_p{size}/last.pt",
    params:
        # kept outside the outputs, which Snakemake deletes when a job fails
        resume="results/resume/{init}_p{size}/state.pt",
        repeat=1,
    threads: config["train"]["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/train/{init}_p{size}.log",
    benchmark:
        "results/benchmarks/train/{init}_p{size}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/train.py"


# Repeats 2.. of a case (experiment.repeats): the same job with the next seed, under
# results/repeats/{repeat}/, each its own job so that they spread over a cluster.
use rule train as train_repeat with:
    output:
        model="results/repeats/{repeat}/cases/{init}_p{size}/model.pt",
        history="results/repeats/{repeat}/cases/{init}_p{size}/history.csv",
        last="results/repeats/{repeat}/cases/{init}_p{size}/last.pt",
    params:
        resume="results/resume/repeats/{repeat}/{init}_p{size}/state.pt",
        repeat=lambda wc: int(wc.repeat),
    log:
        "results/logs/repeats/{repeat}/train/{init}_p{size}.log",
    benchmark:
        "results/benchmarks/repeats/{repeat}/train/{init}_p{size}.tsv"


rule training_curves:
    """Loss, accuracy and mIoU per epoch, training against validation."""
    input:
        "results/cases/{init}_p{size}/history.csv",
    output:
        report(
            "results/cases/{init}_p{size}/training_curves.png",
            caption="../report/training_curves.rst",
            category="2. Training curves",
            labels={"case": "{init}_p{size}"},
        ),
    log:
        "results/logs/training_curves/{init}_p{size}.log",
    benchmark:
        "results/benchmarks/training_curves/{init}_p{size}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/training_curves.py"
