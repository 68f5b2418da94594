# Input data: the demo scene, the pre-flight checks, class statistics and the patch index.


rule demo_scene:
    """Render the synthetic ISPRS-style scene; runs only when the config points at it."""
    output:
        image=layout.demo_file("{split}", "image"),
        label=layout.demo_file("{split}", "label"),
    params:
        size=config["demo"]["size"],
        # the test scene is a different draw of the same generator
        seed=lambda wc: config["demo"]["seed"] + SPLITS.index(wc.split),
    log:
        "results/logs/demo_scene/{split}.log",
    benchmark:
        "results/benchmarks/demo_scene/{split}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/demo_scene.py"


checkpoint preflight:
    """Check the input files from their headers only (the label palette, sizes, bands, patch
    sizes, the validation split, the images to map: a problem stops the workflow here, named
    in one line), and record which images are georeferenced: the rules read it to know which
    predictions and maps are GeoTIFFs. Parsing the workflow opens no image. It runs first and
    alone (no job takes its record as an input, so that a new record reruns none); the jobs
    that read the files check what they read too."""
    input:
        sorted({path for split in SPLITS for tile in TILES[split] for path in (tile.image, tile.label)}
               | set(MAPS.values())),
    output:
        layout.PREFLIGHT,
    params:
        settings=settings("preflight"),
    # first and alone: the highest priority and every core (Snakemake scales a claim down to the
    # cores it has); it takes about a second
    priority: 100
    threads: 1_000_000
    localrule: True
    log:
        "results/logs/preflight.log",
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/preflight.py"


rule class_stats:
    """Pixels and shares of each class per split, over all its tiles, and per tile; class
    weights over all training tiles."""
    input:
        # the images too: where they can have no-data pixels, those are not counted
        [path for split in SPLITS for tile in TILES[split] for path in (tile.label, tile.image)],
    output:
        stats=report(
            f"{DATA}/class_stats.csv",
            caption="../report/class_stats.rst",
            category="1. Data",
            labels={"table": "class statistics"},
        ),
        weights=f"{DATA}/class_weights.json",
        tiles=f"{DATA}/class_stats_tiles.csv",
    params:
        settings=settings("class_stats"),
        tiles={split: tile_params(TILES[split]) for split in SPLITS},
    log:
        "results/logs/class_stats.log",
    benchmark:
        "results/benchmarks/class_stats.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/class_stats.py"


rule patches:
    """The patch index of the training tiles for one patch size, split train/val."""
    input:
        [tile.image for tile in TILES["train"]],
    output:
        layout.PATCHES,
    params:
        settings=settings("patches"),
        images={tile.name: tile.image for tile in TILES["train"]},
        tiled=cfg.tiled(config, "train"),
    log:
        "results/logs/patches/p{size}.log",
    benchmark:
        "results/benchmarks/patches/p{size}.tsv"
    conda:
        "../envs/segmentation.yaml"
    script:
        "../scripts/patches.py"
