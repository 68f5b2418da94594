# Mosaic prediction of whole images and their evaluation, for every run; maps of new imagery.


rule predict:
    """Predict every tile of both splits with one run's model, each as overlapping windows
    whose logits are combined where they overlap; one job per run sets up the model and the
    GPU once. Every image gets its confidence raster prediction_confidence.tif (the softmax of
    the blended logits at the chosen class; in the image's CRS and transform where it has
    them) with its QGIS colour ramp prediction_confidence.qml; a georeferenced one gets its
    prediction.tif from prediction_geotiff."""
    input:
        model=f"{RUN}/model.pt",
        images=[tile.image for split in SPLITS for tile in TILES[split]],
        calibration=lambda wc: [run_file(run_of(wc), "calibration.csv")] if SCALED else [],
    output:
        ids=tile_files(RUN, "prediction.png"),
        color=tile_files(RUN, "prediction_color.png"),
        confidence=tile_files(RUN, TILE_CONFIDENCE),
        confidence_style=tile_files(RUN, TILE_CONFIDENCE_STYLE),
        record=f"{RUN}/prediction_settings.yaml",
    params:
        settings=settings("predict"),
        run=run_params,
        # each image with its outputs above (prediction.TileFiles): image, ids, color, confidence
        files=lambda wc: [
            {"image": tile.image,
             **{key: layout.tile_file(f"{layout.run_dir(run_of(wc))}/{split}", tile, name)
                for key, name in (("ids", "prediction.png"), ("color", "prediction_color.png"),
                                  ("confidence", TILE_CONFIDENCE), ("confidence_style", TILE_CONFIDENCE_STYLE))}}
            for split in SPLITS for tile in TILES[split]
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


rule prediction_geotiff:
    """A georeferenced tile's prediction as a Cloud-Optimised GeoTIFF in its image's CRS and
    transform, from its prediction.png, in the dataset's class codes with a colour table, and
    its QGIS style prediction.qml (the class names and colours). Rule all asks for it where the
    pre-flight record says the image is georeferenced. Light: run where Snakemake runs."""
    input:
        ids=f"{RUN}/{{place}}/prediction.png",
        image=lambda wc: PLACES[wc.place][1].image,
    output:
        geotiff=f"{RUN}/{{place}}/prediction.tif",
        style=f"{RUN}/{{place}}/prediction.qml",
    params:
        settings=settings("prediction_geotiff"),
    localrule: True
    log:
        "results/logs/{prefix}prediction_geotiff/{case}_{place}.log",
    benchmark:
        "results/benchmarks/{prefix}prediction_geotiff/{case}_{place}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/prediction_geotiff.py"


rule calibrate:
    """How far one run's confidences can be trusted: its temperature fitted on its validation
    patches (the split it held out), and the test tiles' confidence against correctness in 15
    equal-width bins, as predicted and with the temperature (the test tiles are predicted once
    more, as the predict rule does, in float)."""
    input:
        model=f"{RUN}/model.pt",
        patches=lambda wc: layout.PATCHES.format(size=run_of(wc).case.size),
        tiles=[path for split in SPLITS for tile in TILES[split] for path in (tile.image, tile.label)],
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
        split=lambda wc: PLACES[wc.place][0],
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


# A map is a GeoTIFF where its image is georeferenced, else a PNG of class ids; its files are
# named by layout.map_files, in layout.MAPS. Which images are georeferenced is known once the
# preflight checkpoint has run: rule all asks for each map in its format (map_outputs), and each
# map rule reads only the images of its format (map_image), which tells Snakemake which rule
# makes a map's preview and the other files beside it, named alike by both.
# With predict.block_size the GeoTIFF maps are made by block jobs (map_grid, map_block,
# map_gather), never by map_geotiff: each rule's {name} matches the maps it makes.
NAMES = alternatives(MAPS)
WHOLE_MAPS, BLOCK_MAPS = ("(?!)", NAMES) if BLOCK_SIZE else (NAMES, "(?!)")
GEO_MAP, GEO_PREVIEW = map(str, layout.map_files(layout.MAPS, f"{{name,{WHOLE_MAPS}}}", layout.GEOTIFF))
GEO_STYLE = str(layout.style_path(GEO_MAP))
BLOCK_MAP, BLOCK_PREVIEW = map(str, layout.map_files(layout.MAPS, f"{{name,{BLOCK_MAPS}}}", layout.GEOTIFF))
MAP_GRID = str(layout.grid_file(layout.MAPS, "{name}"))
MAP_BLOCK = str(layout.block_file(layout.MAPS, "{name}", "{row}", "{col}"))
PNG_MAP, PNG_PREVIEW = map(str, layout.map_files(layout.MAPS, f"{{name,{NAMES}}}", layout.PNG))


rule map_geotiff:
    """Map one unlabelled image (data.predict) with one case's model, and draw a coloured
    preview: map_geotiff writes a georeferenced image's map as a GeoTIFF in its CRS and
    transform, with its QGIS style {name}.qml, map_png any other image's as a PNG of class ids."""
    input:
        model=lambda wc: run_file(MAP_RUN[wc.case], "model.pt"),  # the study's run, repeat 1
        onnx=lambda wc: [run_file(MAP_RUN[wc.case], "model.onnx")] if MAP_ONNX else [],  # beside it: no export
        image=lambda wc: map_image(wc, layout.GEOTIFF),
        calibration=map_calibration,
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
    input:
        model=lambda wc: run_file(MAP_RUN[wc.case], "model.pt"),
        onnx=lambda wc: [run_file(MAP_RUN[wc.case], "model.onnx")] if MAP_ONNX else [],
        image=lambda wc: map_image(wc, layout.PNG),
        calibration=map_calibration,
    output:
        map=PNG_MAP,
        preview=PNG_PREVIEW,
        **map_companions(PNG_MAP),


checkpoint map_grid:
    """The block grid of a map made as block jobs (predict.block_size): the image's size, its
    blocks of block_size px from the top-left corner, those that hold data (a block all
    no-data gets no job) and what the model reads (from model.onnx where the blocks run on
    ONNX Runtime: no torch to start); the rules read it to know the blocks."""
    input:
        model=lambda wc: run_file(MAP_RUN[wc.case], "model.onnx" if MAP_ONNX else "model.pt"),
        image=lambda wc: MAPS[wc.name],
    output:
        str(layout.grid_file(layout.MAPS, f"{{name,{BLOCK_MAPS}}}")),
    params:
        block_size=BLOCK_SIZE,  # a change reruns the grid, the blocks and the map
    log:
        "results/logs/map_grid/{case}/{name}.log",
    benchmark:
        "results/benchmarks/map_grid/{case}/{name}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/map_grid.py"


rule map_block:
    """One block of a map: the windows of the whole image's mosaic that touch the block,
    read with their halo, predicted and blended as in one job; its class ids in a block file,
    temporary (kept with --notemp). One GPU each on a GPU, threads only on the CPU."""
    input:
        model=lambda wc: run_file(MAP_RUN[wc.case], "model.pt"),
        onnx=lambda wc: [run_file(MAP_RUN[wc.case], "model.onnx")] if MAP_ONNX else [],
        image=lambda wc: MAPS[wc.name],
        grid=MAP_GRID,
        calibration=map_calibration,
    output:
        temp(MAP_BLOCK),
    params:
        settings=settings("map"),
        index=lambda wc: (int(wc.row), int(wc.col)),
    threads: cfg.prediction_resources(config)[1]
    resources:
        gpu=BLOCK_GPUS,
    log:
        "results/logs/map_block/{case}/{name}/{row}_{col}.log",
    benchmark:
        "results/benchmarks/map_block/{case}/{name}/{row}_{col}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/map_block.py"


rule map_gather:
    """A map made as block jobs, gathered from its block files: the same Cloud-Optimised
    GeoTIFF, preview, confidence raster and QGIS style as map_geotiff writes, pixel for pixel."""
    input:
        image=lambda wc: map_image(wc, layout.GEOTIFF),
        grid=MAP_GRID,
        blocks=map_block_files,
    output:
        map=BLOCK_MAP,
        preview=BLOCK_PREVIEW,
        style=str(layout.style_path(BLOCK_MAP)),
        **map_companions(BLOCK_MAP),
    params:
        settings=settings("map"),
        block_size=BLOCK_SIZE,  # a map of one job is made again as blocks, and the other way round
    log:
        "results/logs/map_gather/{case}/{name}.log",
    benchmark:
        "results/benchmarks/map_gather/{case}/{name}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/map_gather.py"


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
