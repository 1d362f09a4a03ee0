import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.catalog.hf_config import ConfigError, model_spec_from_hf_config
from apps.catalog.specs import ModelSpec
from apps.planner.perf.calibration import calibrate
from apps.planner.perf.deployment import Deployment, UnsupportedCombination
from apps.planner.perf.predict import predict_point
from apps.planner.selectors import planner_catalog, planner_measured_points


class Command(BaseCommand):
    help = (
        "Predict throughput and latency of one deployment at fixed lengths: offline maximum throughput, or a "
        "closed loop at --concurrency. Measured data for the exact configuration wins and is labelled so."
    )
    # A one-shot calculation: the URL and model checks would double its start-up for nothing.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        model = parser.add_mutually_exclusive_group(required=True)
        model.add_argument("--model", help="catalog model slug")
        model.add_argument("--model-config", type=Path, help="a Hugging Face config.json")
        parser.add_argument("--gpu", required=True, help="catalog GPU slug, or cpu")
        parser.add_argument(
            "--gpu-count", type=int, default=None, help="GPUs in total (default: one replica, tp x dp x pp)"
        )
        parser.add_argument("--tp", type=int, default=1, help="tensor-parallel degree")
        parser.add_argument(
            "--ep", type=int, default=1, help="expert-parallel degree (mixture-of-experts models)"
        )
        parser.add_argument(
            "--dp", type=int, default=1, help="data-parallel attention ranks inside the replica"
        )
        parser.add_argument("--pp", type=int, default=1, help="pipeline stages")
        parser.add_argument("--nodes", type=int, default=1, help="hosts the replica spans")
        parser.add_argument("--engine", required=True)
        parser.add_argument("--quant", required=True)
        parser.add_argument("--isl", type=int, required=True, help="prompt tokens")
        parser.add_argument("--osl", type=int, required=True, help="output tokens")
        parser.add_argument("--concurrency", type=int, default=None, help="closed-loop requests in flight")
        parser.add_argument("--max-num-seqs", type=int, default=None, help="engine batch limit override")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in (
            "tp",
            "ep",
            "dp",
            "pp",
            "nodes",
            "isl",
            "osl",
            "gpu_count",
            "concurrency",
            "max_num_seqs",
        ):
            if options[name] is not None and options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        catalog = planner_catalog()
        try:
            model = self._model(catalog.model, options)
            gpu = catalog.gpu(options["gpu"])
            quant = catalog.quantization(options["quant"])
        except KeyError as exc:
            raise CommandError(str(exc.args[0])) from exc
        dep = Deployment(
            model=model,
            gpu=gpu,
            quant=quant,
            engine=options["engine"],
            tp=options["tp"],
            ep=options["ep"],
            dp=options["dp"],
            pp=options["pp"],
            nodes=options["nodes"],
            max_num_seqs=options["max_num_seqs"],
        )
        calibration = calibrate(catalog, planner_measured_points())
        try:
            prediction = predict_point(
                calibration,
                dep,
                isl=options["isl"],
                osl=options["osl"],
                concurrency=options["concurrency"],
                gpu_count=options["gpu_count"],
            )
        except UnsupportedCombination as exc:
            raise CommandError(f"impossible combination: {exc}") from exc
        result = {
            "model": model.slug,
            "gpu": gpu.slug,
            "engine": dep.engine,
            "quant": quant.slug,
            "tp": dep.tp,
            "ep": dep.ep,
            "dp": dep.dp,
            "pp": dep.pp,
            "nodes": dep.nodes,
            "parallelism": dep.parallelism,
            "gpu_count": options["gpu_count"] or dep.gpus,
            "isl": options["isl"],
            "osl": options["osl"],
            "concurrency": options["concurrency"],
            "catalog_version": catalog.version,
            **prediction.to_dict(),
        }
        if options["json"]:
            self.stdout.write(json.dumps(result, allow_nan=False))
            return
        typical = prediction.bands["output_tokens_per_s"]
        band = f"±{typical.median_ape * 100:.0f}% typical, {typical.p90_ape * 100:.0f}% p90 over {typical.rows} rows"
        if not prediction.fits:
            self.stdout.write(f"does not fit: {prediction.memory.reason if prediction.memory else ''}")
            return
        self.stdout.write(
            f"{result['output_tokens_per_s']:.0f} output tokens/s ({prediction.source}, {band}, "
            f"{prediction.calibration_key}: {prediction.basis}); TTFT {result['ttft_ms']} ms, "
            f"TPOT {result['tpot_ms']} ms; up to {prediction.max_concurrent_sequences} sequences"
        )

    @staticmethod
    def _model(lookup: Any, options: dict[str, Any]) -> ModelSpec:
        if options["model"]:
            spec: ModelSpec = lookup(options["model"])
            return spec
        path: Path = options["model_config"]
        try:
            config = json.loads(path.read_text())
            return model_spec_from_hf_config(config, slug=path.parent.name or path.stem)
        except (OSError, ValueError) as exc:
            reason = exc if isinstance(exc, ConfigError) else f"cannot read {path}: {exc}"
            raise CommandError(str(reason)) from exc
