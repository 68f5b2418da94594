"""The README and the docs pages it links stay true: the front page stays short, every config
key and results/ path of the public contract stays documented, what they name exists (keys in
the schema, files in the code, links, make targets, console options, pinned versions), the
quoted messages are the code's, and the notebook snippet runs as printed."""

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from aerialseg import config as cfg
from aerialseg.config import layout
from aerialseg.config.validation import read
from aerialseg import demo
from aerialseg.io.write import write_png

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

PENDING: set[str] = set()
"""Pages that the README links and that are written on other branches (the command line, the
confidence rasters); remove a name once its page is merged."""

CONTRACT_KEYS = [
    "data.bands", "data.classes", "data.ignore_colors", "data.ignore_values", "data.label_format", "data.nodata",
    "data.predict", "data.test", "data.test.image", "data.test.label", "data.train", "data.train.image",
    "data.train.label", "data.value_range", "demo.seed", "demo.size", "experiment.block_size", "experiment.inits",
    "experiment.patch_sizes", "experiment.repeats", "experiment.seed", "experiment.split", "experiment.stride",
    "experiment.val_fraction", "figures.metrics", "model.architecture", "model.decoder_channels", "model.encoder",
    "model.encoder_depth", "model.weights", "predict.backend", "predict.batch_size", "predict.blend",
    "predict.cases", "predict.device", "predict.fold_batchnorm", "predict.memory_format", "predict.min_area",
    "predict.precision", "predict.stride", "predict.threads", "predict.tta", "predict.vectors", "train.augment",
    "train.batch_size", "train.budget", "train.capture", "train.device", "train.epochs", "train.lr",
    "train.memory_format", "train.optimizer", "train.precision", "train.resume_seconds", "train.threads",
    "train.weight_decay", "train.weighting",
]
"""The config keys that the README listed when it was split into docs pages (a public
contract): each must stay documented on the front page or a page it links."""

CONTRACT_PATHS = [
    "results/data/class_stats.csv", "results/data/class_weights.json", "results/data/class_stats_tiles.csv",
    "results/patches/p{size}.csv", "results/cases/{init}_p{size}/model.pt", "results/cases/{init}_p{size}/last.pt",
    "results/cases/{init}_p{size}/model.onnx", "results/repeats/{repeat}/cases/{case}/model.onnx",
    "results/cases/{init}_p{size}/history.csv", "results/cases/{init}_p{size}/training_curves.png",
    "results/cases/{init}_p{size}/settings.yaml", "results/cases/{init}_p{size}/prediction_settings.yaml",
    "results/cases/{case}/{split}/prediction.png", "results/cases/{case}/{split}/prediction_color.png",
    "results/cases/{case}/{split}/prediction.tif", "results/cases/{case}/{split}/prediction.gpkg",
    "results/cases/{case}/{split}/metrics.csv", "results/cases/{case}/{split}/confusion.csv",
    "results/cases/{case}/{split}/mosaic.png", "results/summary/training.csv", "results/summary/evaluation.csv",
    "results/summary/per_class.csv", "results/summary/runs.csv", "results/summary/study_tables.md",
    "results/summary/tiles.csv", "results/cases/{case}/{split}/{tile}/…", "results/maps/{case}/{name}.tif",
    "results/maps/best_case.yaml", "results/summary/settings.yaml", "results/summary/conclusions.md",
    "results/summary/confusion_{split}.png", "results/summary/learning_curves.png",
    "results/summary/metrics_vs_patch_size.png", "results/repeats/{repeat}/cases/{case}/…", "results/logs/…",
    "results/benchmarks/…", "results/report.html", "results/resume/{case}/state.pt", "results/demo/",
]
"""The results/ paths that the README listed when it was split into docs pages (a public
contract): each must stay documented on the front page or a page it links."""


def _links(text: str) -> list[str]:
    """The relative targets of the Markdown links of a page (no web addresses)."""
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", target)]


def _pages() -> dict[str, str]:
    """README.md and every page it links, directly or through another page: {path: text}."""
    pages, todo = {}, ["README.md"]
    while todo:
        name = todo.pop()
        if name in pages or name in PENDING or not name.endswith(".md") or not (ROOT / name).is_file():
            continue
        pages[name] = (ROOT / name).read_text()
        for target in _links(pages[name]):
            path = target.split("#")[0]
            if path:
                todo.append(str((ROOT / name).parent.joinpath(path).resolve().relative_to(ROOT)))
    return pages


def _documented() -> str:
    return "\n".join(text for name, text in _pages().items() if name != "benchmarks/README.md")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_front_page_is_short_and_maps_your_imagery_early():
    lines = README.read_text().splitlines()
    assert len(lines) < 250
    for heading in ("## Install", "## Two commands", "## Map your own imagery", "### Open it in QGIS"):
        assert heading in lines and lines.index(heading) < 100, heading
    for heading in ("## On a GPU", "## On a Slurm cluster", "## Where results go"):
        assert heading in lines, heading


def test_the_docs_pages_are_linked_from_the_front_page():
    pages = _pages()
    for name in ("docs/study.md", "docs/outputs.md", "docs/performance.md", "docs/configuration.md",
                 "docs/internals.md", "docs/architecture.md", "benchmarks/README.md"):
        assert name in pages, f"{name} is not linked from README.md"
    linked = set(_links(README.read_text()))
    assert "docs/command-line.md" in linked


def test_every_contract_key_and_path_stays_documented():
    text = _documented()
    assert [key for key in CONTRACT_KEYS if f"`{key}`" not in text and f"| `{key}` |" not in text] == []
    assert [path for path in CONTRACT_PATHS if path not in text] == []


def _schema_keys() -> set[str]:
    """Every dotted key of the schema, the forms of a oneOf or a $ref under the same key."""
    schema = cfg.load_schema()

    def walk(node, key=""):
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        for name, child in node.get("properties", {}).items():
            yield f"{key}.{name}".lstrip(".")
            yield from walk(child, f"{key}.{name}".lstrip("."))
        for branch in node.get("oneOf", []) + node.get("anyOf", []):
            yield from walk(branch, key)
    return set(walk(schema))


def test_every_config_key_the_docs_name_is_in_the_schema():
    keys, sections = _schema_keys(), {"data", "demo", "experiment", "model", "train", "predict", "figures"}
    named = set()
    for name, text in _pages().items():
        if name == "benchmarks/README.md":  # names functions (train.fit) in the same form
            continue
        for key in re.findall(r"`([a-z]+(?:\.[a-z_]+)+)(?:\[\d*\])?(?:[:` ])", text):
            if key.split(".")[0] in sections and not re.search(r"\.(pt|onnx|yaml|py|tif|png|csv|md)$", key):
                named.add((name, key))
    assert len(named) > 50
    assert sorted((name, key) for name, key in named if key not in keys) == []


def _code_text() -> str:
    files = [*ROOT.glob("rules/*.smk"), ROOT / "Snakefile", *ROOT.glob("scripts/*.py"),
             *(ROOT / "src/aerialseg").rglob("*.py")]
    return "\n".join(path.read_text() for path in files)


def test_every_results_path_the_docs_name_is_made_by_the_code():
    """Each literal part of a documented results/ path (a folder or file name, or what is left
    of one around its wildcards) is spelled somewhere in the rules, scripts or package."""
    code = _code_text()
    unknown = set()
    for text in _pages().values():
        for path in re.findall(r"results/[A-Za-z0-9_{}./\-]+", text):
            for part in path.rstrip("./").split("/")[1:]:
                for literal in re.split(r"\{[a-z_]+\}|\.", part):  # wildcards, and a name apart from its suffix
                    if len(literal) >= 3 and literal not in code and literal not in {"imagenet_p64", "imagenet_p", "area_7"}:
                        unknown.add((path, literal))
    assert sorted(unknown) == []


def test_the_check_of_results_paths_can_fail():
    assert "prediction_colour" not in _code_text()


def test_every_link_resolves_to_a_file_and_a_heading():
    broken = []
    for name, text in _pages().items():
        for target in _links(text):
            path, _, anchor = target.partition("#")
            file = (ROOT / name).parent.joinpath(path).resolve() if path else ROOT / name
            relative = str(file.relative_to(ROOT)) if file.is_relative_to(ROOT) else str(file)
            if relative in PENDING:
                continue
            if not file.exists():
                broken.append((name, target))
            elif anchor and file.suffix == ".md":
                headings = {_slug(line.lstrip("#")) for line in file.read_text().splitlines() if line.startswith("#")}
                if anchor not in headings:
                    broken.append((name, target))
    assert broken == []


def test_every_make_target_and_shipped_file_named_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, re.M))
    missing = []
    for name, text in _pages().items():
        missing += [(name, f"make {t}") for t in re.findall(r"(?:`|^)make ([a-z-]+)\b", text, re.M)
                    if t not in targets]
        for path in re.findall(r"`((?:config|profiles|benchmarks|envs|tests|report|\.ci)/[A-Za-z0-9_./\-]+)", text):
            path = path.rstrip(".")
            if re.search(r"\.[a-z]+$|/$", path) and "*" not in path and "{" not in path and not (ROOT / path).exists():
                missing.append((name, path))
    assert missing == []


def test_every_console_option_the_docs_name_exists():
    from aerialseg import cli

    parser = cli.parser()
    commands = parser._subparsers._group_actions[0].choices
    options = {name: {s for action in sub._actions for s in action.option_strings} for name, sub in commands.items()}
    unknown = []
    for name, text in _pages().items():
        for command, rest in re.findall(r"aerialseg (predict|export)\b([^`\n]*)", text):
            unknown += [(name, command, opt) for opt in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", rest)
                        if opt not in options[command]]
    mapping = (ROOT / "docs/mapping.md").read_text()
    listed = re.findall(r"`(--[a-z0-9-]+)`", mapping)
    assert len(listed) >= 10
    unknown += [("docs/mapping.md", "predict", opt) for opt in listed if opt not in options["predict"] | options["export"]]
    assert unknown == []


def test_every_pinned_version_the_docs_give_is_the_requirements():
    pins = {}
    for name in ("requirements.txt", "requirements-dev.txt", "requirements-weights.txt"):
        for package, version in re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s#\\]+)", (ROOT / name).read_text(), re.M):
            pins[package.lower()] = version
    wrong = []
    for name, text in _pages().items():
        for package, version in re.findall(r"(?<![\w.\-])([a-z][a-z0-9_\-]+)==([0-9][^\s`)]*)", text):
            if package.lower() in pins and pins[package.lower()] != version.rstrip(".,;"):
                wrong.append((name, package, version))
    assert wrong == []
    assert "snakemake-executor-plugin-slurm==" + pins["snakemake-executor-plugin-slurm"] in README.read_text()


def test_the_quoted_config_error_is_what_the_validation_says():
    block = re.search(r"```\n(WorkflowError in file .*?)```", README.read_text(), re.S)[1].splitlines()
    assert block[0].startswith('WorkflowError in file ".../rules/common.smk", line ')
    line = int(block[0].rsplit(" ", 1)[1].rstrip(":"))
    common = (ROOT / "rules/common.smk").read_text().splitlines()
    assert "raise WorkflowError(" in common[line - 1], f"rules/common.smk line {line} raises no WorkflowError"
    config = read(ROOT / "config.yaml")
    cfg.merge(config, {"experiment": {"patch_sizes": [30]}, "train": {"lr": "1e-3"}})  # YAML reads 1e-3 as text
    with pytest.raises(cfg.ConfigError) as error:
        cfg.validate(config, producible=layout.demo_files())
    assert block[1:-1] == str(error.value).splitlines()


QUOTED = [
    # (page, text quoted there, the code's format string, the file it is in)
    ("docs/mapping.md", "case imagenet_p64: predicting 2 image(s) with ONNX Runtime on the CPU (2 session(s) side by side, 1 thread(s) each, float32)",
     'case %s: predicting %d image(s) with %s', "inference.py"),
    ("docs/mapping.md", "ONNX Runtime on the CPU (2 session(s) side by side, 1 thread(s) each, float32)",
     'f"ONNX Runtime on the CPU ({model.describe()})"', "backends.py"),
    ("docs/mapping.md", "with torch on cpu (2 CPU threads), in float32, channels-last, batch norm folded",
     'f"torch on {device} ({runtime.threads} CPU threads), in {how.describe()}"', "backends.py"),
    ("docs/running.md", "took GPU slot 0 of GPU 1 (/tmp/aerialseg-gpu-locks/GPU-....0.lock)",
     "took GPU slot %d of GPU %d (%s)", "device.py"),
    ("docs/running.md", "start-up: T s before the first epoch (launch T s, imports T s, device T s, data T s, model T s)",
     "start-up: %.1f s before %s (%s)", "startup.py"),
    ("docs/running.md", "model in bf16 autocast, channels-last on cuda:1", "model in %s on %s", "train.py"),
    ("docs/running.md", "training step: captured, N replays (after 3 eager warm-up calls; N + 3 calls in all)",
     "training step: %s", "train.py"),
    ("docs/running.md", "eager, because the device is the CPU (12 calls)", 'f"eager, because {self.why_eager} ({self.calls} calls)"',
     "device.py"),
]


def _as_pattern(template: str) -> str:
    template = template.removeprefix('f"').removesuffix('"')
    parts = re.split(r"(%[-.\d]*[sdf]|\{[^}]+\})", template)
    return "".join(".+?" if i % 2 else re.escape(part) for i, part in enumerate(parts))


@pytest.mark.parametrize("page, quoted, template, source", QUOTED)
def test_a_quoted_log_line_is_the_codes(page, quoted, template, source):
    assert template in (ROOT / "src/aerialseg" / source).read_text(), f"{source} no longer says {template}"
    assert quoted in (ROOT / page).read_text()
    assert re.search(_as_pattern(template), quoted), f"{quoted!r} is not what {template!r} writes"


def test_the_memory_format_and_precision_the_docs_quote_are_the_codes():
    import torch

    from aerialseg import device

    assert device.Compute(torch.device("cuda", 1), bf16=True, channels_last=True).describe() == "bf16 autocast, channels-last"
    assert device.Compute(torch.device("cpu"), channels_last=True).describe() == "float32, channels-last"
    cpu = torch.device("cpu")
    assert device.compute(cpu) == device.Compute(cpu, bf16=False, channels_last=True)        # prediction: auto
    assert device.compute_for_training(cpu) == device.Compute(cpu, bf16=False, channels_last=False)


FORBIDDEN = ["the code of issue", "earlier test machine", "faster 2-core", "this session", "today's", "an earlier run",
             "earlier session", " we ", "We "]


def test_no_project_log_wording():
    found = [(name, phrase) for name, text in _pages().items() if name != "benchmarks/README.md"
             for phrase in FORBIDDEN if phrase in text]
    assert found == []


def test_the_notebook_snippet_runs_as_printed(tmp_path, monkeypatch):
    page = (ROOT / "docs/internals.md").read_text()
    snippet = re.search(r"so it can be used from a notebook too.*?```python\n(.*?)```", page, re.S)[1]
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    paths = {}
    for seed, image in enumerate(("train", "test")):
        pixels, label = demo.render_scene(128, seed=seed)
        write_png(tmp_path / f"{image}.png", pixels)
        write_png(tmp_path / f"{image}_label.png", label)
        paths[image] = f"{{image: {image}.png, label: {image}_label.png}}"
    (tmp_path / "config/my_data.yaml").write_text(f"data:\n  train: {paths['train']}\n  test: {paths['test']}\n")
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "docs/internals.md", "exec"), {})
    table = pd.read_csv(tmp_path / "stats.csv")
    assert table.groupby("image").share.sum().to_dict() == pytest.approx({"train": 100.0, "test": 100.0})


def test_the_yaml_examples_have_only_known_keys():
    """Every YAML block of the pages is a config part whose keys the schema knows."""
    import jsonschema
    import yaml

    from tests.test_docs import _unknown_keys

    validator = jsonschema.Draft202012Validator(cfg.load_schema())
    blocks = [(name, block) for name, text in _pages().items() for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    assert len(blocks) >= 4
    assert [(name, _unknown_keys(validator.iter_errors(yaml.safe_load(block)))) for name, block in blocks
            if _unknown_keys(validator.iter_errors(yaml.safe_load(block)))] == []
