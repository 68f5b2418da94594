# Mosaic prediction of whole images and their evaluation.


rule predict:
    """Predict both images with one case's model, each as overlapping windows whose logits
    are averaged where they overlap; one job per case sets up the model and the GPU once.
    A georeferenced image also gets prediction.tif (its CRS and transform, a colour table)."""
    input:
        model="results/cases/{init}_p{size}/model.pt",
        images=[config["data"][image]["image"] for image in IMAGES],
    output:
        ids=expand("results/cases/{{init}}_p{{size}}/{image}/prediction.png", image=IMAGES),
        color=expand("results/cases/{{init}}_p{{size}}/{image}/prediction_color.png", image=IMAGES),
        geotiff=expand("results/cases/{{init}}_p{{size}}/{image}/prediction.tif", image=GEOREFERENCED),
    threads: config["train"]["threads"]
    resources:
        gpu=1,
    log:
        "results/logs/predict/{init}_p{size}.log",
    benchmark:
        "results/benchmarks/predict/{init}_p{size}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/predict.py"


use rule predict as predict_repeat with:
    input:
        model="results/repeats/{repeat}/cases/{init}_p{size}/model.pt",
        images=[config["data"][image]["image"] for image in IMAGES],
    output:
        ids=expand("results/repeats/{{repeat}}/cases/{{init}}_p{{size}}/{image}/prediction.png", image=IMAGES),
        color=expand("results/repeats/{{repeat}}/cases/{{init}}_p{{size}}/{image}/prediction_color.png", image=IMAGES),
        geotiff=expand("results/repeats/{{repeat}}/cases/{{init}}_p{{size}}/{image}/prediction.tif", image=GEOREFERENCED),
    log:
        "results/logs/repeats/{repeat}/predict/{init}_p{size}.log",
    benchmark:
        "results/benchmarks/repeats/{repeat}/predict/{init}_p{size}.tsv"


rule evaluate:
    """Per-class precision, recall, F1, IoU, the confusion matrix and the mosaic figure
    (image | ground truth | prediction | errors); ignored pixels are left out."""
    input:
        prediction="results/cases/{init}_p{size}/{image}/prediction.png",
        image=image_path,
        label=label_path,
    output:
        metrics="results/cases/{init}_p{size}/{image}/metrics.csv",
        confusion="results/cases/{init}_p{size}/{image}/confusion.csv",
        mosaic=report(
            "results/cases/{init}_p{size}/{image}/mosaic.png",
            caption="../report/mosaic.rst",
            category="3. Mosaics",
            subcategory="{image} image",
            labels={"case": "{init}_p{size}", "image": "{image}"},
        ),
    log:
        "results/logs/evaluate/{init}_p{size}_{image}.log",
    benchmark:
        "results/benchmarks/evaluate/{init}_p{size}_{image}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/evaluate.py"


# Repeats keep the scores and confusion matrices; the mosaic figure is drawn for repeat 1.
use rule evaluate as evaluate_repeat with:
    input:
        prediction="results/repeats/{repeat}/cases/{init}_p{size}/{image}/prediction.png",
        image=image_path,
        label=label_path,
    output:
        metrics="results/repeats/{repeat}/cases/{init}_p{size}/{image}/metrics.csv",
        confusion="results/repeats/{repeat}/cases/{init}_p{size}/{image}/confusion.csv",
    log:
        "results/logs/repeats/{repeat}/evaluate/{init}_p{size}_{image}.log",
    benchmark:
        "results/benchmarks/repeats/{repeat}/evaluate/{init}_p{size}_{image}.tsv"
