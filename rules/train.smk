# Training: one job per run (a case, {init}_p{size}, and a repeat), on the GPU when there is one.
# Repeat 1 lives under results/cases/, repeat r under results/repeats/r/cases/ ({prefix}).


rule train:
    """Train DeepLabV3+ on the patches of one size, from ImageNet weights or from scratch,
    with the seed of the run's repeat."""
    input:
        tiles=[path for tile in TILES["train"] for path in (tile.image, tile.label)],
        patches=lambda wc: layout.PATCHES.format(size=run_of(wc).case.size),
        weights=f"{DATA}/class_weights.json",
        # a step or pixel budget is counted in the epochs of the smallest patch size
        **({"reference_patches": layout.PATCHES.format(size=cfg.budget_reference(config))}
           if cfg.budget_reference(config) else {}),
    output:
        model=f"{RUN}/model.pt",
        history=f"{RUN}/history.csv",
        last=f"{RUN}/last.pt",
        settings=f"{RUN}/settings.yaml",
    params:
        settings=settings("train"),
        run=run_params,
        tiles=tile_params(TILES["train"]),
        # kept outside the outputs, which Snakemake deletes when a job fails
        resume=layout.RESUME,
    threads: config["train"]["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/{prefix}train/{case}.log",
    benchmark:
        "results/benchmarks/{prefix}train/{case}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/train.py"


rule export_onnx:
    """One run's model as an ONNX file that maps imagery without this project: aerialseg
    predict (ONNX Runtime) and QGIS's Deepness plugin read everything they need from it. Built
    when asked for (a target), not by default."""
    input:
        model=f"{RUN}/model.pt",
    output:
        f"{RUN}/model.onnx",
    params:
        settings=settings("export_onnx"),
        run=run_params,
    log:
        "results/logs/{prefix}export_onnx/{case}.log",
    benchmark:
        "results/benchmarks/{prefix}export_onnx/{case}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/export_onnx.py"


rule export_onnx_int8:
    """One run's model.onnx quantised to int8 (ONNX Runtime's static quantisation, activations
    calibrated on windows of the training tiles) for faster mapping on the CPU: optional, never
    the default; built when asked for (a target)."""
    input:
        model=f"{RUN}/model.onnx",
        images=[tile.image for tile in TILES["train"]],
    output:
        f"{RUN}/model_int8.onnx",
    log:
        "results/logs/{prefix}export_onnx_int8/{case}.log",
    benchmark:
        "results/benchmarks/{prefix}export_onnx_int8/{case}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/export_onnx_int8.py"


rule training_curves:
    """Loss, accuracy and mIoU per epoch, training against validation."""
    input:
        f"{RUN}/history.csv",
    output:
        report(
            f"{RUN}/training_curves.png",
            caption="../report/training_curves.rst",
            category="2. Training curves",
            labels={"case": "{case}"},
        ),
    params:
        settings=settings("training_curves"),
        run=run_params,
    log:
        "results/logs/{prefix}training_curves/{case}.log",
    benchmark:
        "results/benchmarks/{prefix}training_curves/{case}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/training_curves.py"
