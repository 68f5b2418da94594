# Mosaic prediction of whole images and their evaluation, for every run; maps of new imagery.


rule predict:
    """Predict every tile of both splits with one run's model, each as overlapping windows
    whose logits are combined where they overlap; one job per run sets up the model and the
    GPU once. A georeferenced image also gets prediction.tif (its CRS and transform, a colour
    table) and its QGIS style prediction.qml (the class names and colours); every image its
    confidence raster prediction_confidence.tif (the softmax of the blended logits at the
    chosen class)."""
    input:
        model=f"{RUN}/model.pt",
        images=[tile.image for image in IMAGES for tile in TILES[image]],
    output:
        ids=tile_files(RUN, "prediction.png"),
        color=tile_files(RUN, "prediction_color.png"),
        geotiff=[path for image in IMAGES for tile in TILES[image] if tile.image in GEOREFERENCED
                 for path in [layout.tile_file(f"{RUN}/{image}", tile, "prediction.tif")]],
        style=[path for image in IMAGES for tile in TILES[image] if tile.image in GEOREFERENCED
               for path in [layout.tile_file(f"{RUN}/{image}", tile, "prediction.qml")]],
        confidence=tile_files(RUN, TILE_CONFIDENCE),
        record=f"{RUN}/prediction_settings.yaml",
    params:
        settings=settings("predict"),
        run=run_params,
        # each image with its outputs above (prediction.TileFiles): image, ids, color, confidence,
        # and for a georeferenced image its geotiff and style (else None)
        files=lambda wc: [
            {"image": tile.image,
             **{key: layout.tile_file(f"{layout.run_dir(run_of(wc))}/{image}", tile, name)
                for key, name in (("ids", "prediction.png"), ("color", "prediction_color.png"),
                                  ("confidence", TILE_CONFIDENCE))},
             **{key: layout.tile_file(f"{layout.run_dir(run_of(wc))}/{image}", tile, name)
                if tile.image in GEOREFERENCED else None
                for key, name in (("geotiff", "prediction.tif"), ("style", "prediction.qml"))}}
            for image in IMAGES for tile in TILES[image]
        ],
    threads: cfg.prediction_resources(config)[1]
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


rule calibrate:
    """How far one run's confidences can be trusted: its temperature fitted on its validation
    patches (the split it held out), and the test tiles' confidence against correctness in 15
    equal-width bins, as predicted and with the temperature (the test tiles are predicted once
    more, as the predict rule does, in float)."""
    input:
        model=f"{RUN}/model.pt",
        patches=lambda wc: layout.PATCHES.format(size=run_of(wc).case.size),
        tiles=[path for image in IMAGES for tile in TILES[image] for path in (tile.image, tile.label)],
    output:
        summary=f"{RUN}/calibration.csv",
        reliability=f"{RUN}/reliability.csv",
        scaled=f"{RUN}/reliability_scaled.csv",
    params:
        settings=settings("calibrate"),
        run=run_params,
        train=tile_params(TILES["train"]),
        test=tile_params(TILES["test"]),
    threads: cfg.prediction_resources(config)[1]
    resources:
        gpu=1,
    log:
        "results/logs/{prefix}calibrate/{case}.log",
    benchmark:
        "results/benchmarks/{prefix}calibrate/{case}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/calibrate.py"


rule evaluate:
    """Per-class precision, recall, F1, IoU, the confusion matrix and the mosaic figure
    (image | ground truth | prediction | errors) of one image or tile; ignored pixels are
    left out."""
    input:
        prediction=f"{RUN}/{{place}}/prediction.png",
        image=lambda wc: PLACES[wc.place][1].image,
        label=lambda wc: PLACES[wc.place][1].label,
    output:
        metrics=f"{RUN}/{{place}}/metrics.csv",
        confusion=f"{RUN}/{{place}}/confusion.csv",
        mosaic=report(
            f"{RUN}/{{place}}/mosaic.png",
            caption="../report/mosaic.rst",
            category="3. Mosaics",
            subcategory="{place} image",
            labels={"case": "{case}", "run": RUN, "image": "{place}"},
        ),
    params:
        settings=settings("evaluate"),
        run=run_params,
        image=lambda wc: PLACES[wc.place][0],
        tile=lambda wc: PLACES[wc.place][1].folder,
    log:
        "results/logs/{prefix}evaluate/{case}_{place}.log",
    benchmark:
        "results/benchmarks/{prefix}evaluate/{case}_{place}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/evaluate.py"


rule pool:
    """The scores of a split of several tiles pooled: the sum of their confusion matrices and
    its per-class scores."""
    input:
        lambda wc: [layout.tile_file(f"{layout.run_dir(run_of(wc))}/{wc.pooled}", tile, "confusion.csv")
                    for tile in TILES[wc.pooled]],
    output:
        metrics=f"{RUN}/{{pooled}}/metrics.csv",
        confusion=f"{RUN}/{{pooled}}/confusion.csv",
    params:
        settings=settings("pool"),
    log:
        "results/logs/{prefix}pool/{case}_{pooled}.log",
    benchmark:
        "results/benchmarks/{prefix}pool/{case}_{pooled}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/pool.py"


checkpoint best_case:
    """The case with the best validation mIoU (training.csv), which maps data.predict unless
    predict.cases names others."""
    input:
        f"{SUMMARY}/training.csv",
    output:
        layout.BEST_CASE,
    log:
        "results/logs/best_case.log",
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/best_case.py"


# A map is a GeoTIFF where its image is georeferenced, else a PNG of class ids (prediction.map_files);
# its files are named by layout.map_files, in layout.MAPS, with the wildcard {name} constrained to
# the images of each kind.
GEO_MAPS = alternatives(name for name, suffix in MAP_SUFFIX.items() if suffix == layout.GEOTIFF)
PNG_MAPS = alternatives(name for name, suffix in MAP_SUFFIX.items() if suffix == layout.PNG)
GEO_MAP, GEO_PREVIEW = map(str, layout.map_files(layout.MAPS, f"{{name,{GEO_MAPS}}}", layout.GEOTIFF))
GEO_STYLE = str(layout.style_path(GEO_MAP))
PNG_MAP, PNG_PREVIEW = map(str, layout.map_files(layout.MAPS, f"{{name,{PNG_MAPS}}}", layout.PNG))



rule map_geotiff:
    """Map one unlabelled image (data.predict) with one case's model, and draw a coloured
    preview: map_geotiff writes a georeferenced image's map as a GeoTIFF in its CRS and
    transform, with its QGIS style {name}.qml, map_png any other image's as a PNG of class ids."""
    input:
        model=lambda wc: run_file(cfg.Run(cfg.Case.parse(wc.case)), "model.pt"),  # the study's run, repeat 1
        image=lambda wc: MAPS[wc.name],
    output:
        map=GEO_MAP,
        preview=GEO_PREVIEW,
        style=GEO_STYLE,
        **map_companions(GEO_MAP),
    params:
        settings=settings("map"),
    threads: cfg.prediction_resources(config)[1]
    resources:
        gpu=1,
    log:
        "results/logs/map/{case}/{name}.log",
    benchmark:
        "results/benchmarks/map/{case}/{name}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/map.py"


use rule map_geotiff as map_png with:
    output:
        map=PNG_MAP,
        preview=PNG_PREVIEW,
        **map_companions(PNG_MAP),


rule polygons:
    """The polygons of a georeferenced map (predict.vectors): one feature per connected region
    of a class, with its name and the value the map holds, after regions under
    predict.min_area px are merged into their neighbours, with the mean of the map's
    confidence raster over each; for the study's prediction.tif and the maps of data.predict
    alike."""
    input:
        map="results/{map}.tif",
        confidence="results/{map}_confidence.tif",
    output:
        "results/{map}.gpkg",
    params:
        settings=settings("polygons"),
    log:
        "results/logs/polygons/{map}.log",
    benchmark:
        "results/benchmarks/polygons/{map}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/polygons.py"
