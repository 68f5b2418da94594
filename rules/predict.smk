# Mosaic prediction of whole images and their evaluation, for every run.


rule predict:
    """Predict both images with one run's model, each as overlapping windows whose logits
    are combined where they overlap; one job per run sets up the model and the GPU once.
    A georeferenced image also gets prediction.tif (its CRS and transform, a colour table)."""
    input:
        model="results/{prefix}cases/{case}/model.pt",
        images=[config["data"][image]["image"] for image in IMAGES],
    output:
        ids=expand("results/{{prefix}}cases/{{case}}/{image}/prediction.png", image=IMAGES),
        color=expand("results/{{prefix}}cases/{{case}}/{image}/prediction_color.png", image=IMAGES),
        geotiff=expand("results/{{prefix}}cases/{{case}}/{image}/prediction.tif", image=GEOREFERENCED),
    params:
        settings=settings("predict"),
    threads: config["predict"]["threads"] or config["train"]["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/{prefix}predict/{case}.log",
    benchmark:
        "results/benchmarks/{prefix}predict/{case}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/predict.py"


rule evaluate:
    """Per-class precision, recall, F1, IoU, the confusion matrix and the mosaic figure
    (image | ground truth | prediction | errors); ignored pixels are left out."""
    input:
        prediction="results/{prefix}cases/{case}/{image}/prediction.png",
        image=image_path,
        label=label_path,
    output:
        metrics="results/{prefix}cases/{case}/{image}/metrics.csv",
        confusion="results/{prefix}cases/{case}/{image}/confusion.csv",
        mosaic=report(
            "results/{prefix}cases/{case}/{image}/mosaic.png",
            caption="../report/mosaic.rst",
            category="3. Mosaics",
            subcategory="{image} image",
            labels={"case": "{case}", "run": "results/{prefix}cases/{case}", "image": "{image}"},
        ),
    params:
        settings=settings("evaluate"),
        run=lambda wc: (run_of(wc).case.init, run_of(wc).case.size, run_of(wc).repeat),
    log:
        "results/logs/{prefix}evaluate/{case}_{image}.log",
    benchmark:
        "results/benchmarks/{prefix}evaluate/{case}_{image}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/evaluate.py"
