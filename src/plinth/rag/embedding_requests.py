"""``/v1/embeddings`` requests: what ``input`` may be, the limits, and the answer (ADR 0113).

``input`` is what the OpenAI API accepts: a string, a list of strings, an array of token ids,
or a list of token-id arrays. Token ids are OpenAI's ``cl100k_base`` ids (the tokenizer of
OpenAI's embedding models, what LangChain's ``OpenAIEmbeddings`` and every OpenAI client
that sends ids use); they are decoded back to text with the encoding plinth ships
(:mod:`plinth.embeddings.openai_tokens`) and the text is embedded by the configured
embedder. Limits, each refused with 400 naming ``input``: at most :data:`MAX_INPUTS` inputs,
at most :data:`MAX_IDS_PER_INPUT` ids in one array, ids inside the encoding's vocabulary,
no empty input, each input within the embedder's ``max_tokens`` and all of them within
:data:`MAX_TOTAL_TOKENS` (counted by the embedder's own tokenizer).

``dimensions`` keeps the first N components and rescales the vector to unit length (what
OpenAI's text-embedding-3 models do); N may be at most the model's dimension.
``encoding_format=base64`` sends little-endian float32 bytes, as OpenAI does.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plinth.embeddings.base import Embedder
from plinth.embeddings.openai_tokens import N_VOCAB, SPECIAL_TOKENS, token_decoder
from plinth.errors import ErrorCode, PlinthError

if TYPE_CHECKING:
    from plinth.rag.service import KnowledgeService

#: inputs in one request (OpenAI's limit)
MAX_INPUTS = 2048
#: ids in one token array (OpenAI's embedding models take at most 8192 tokens)
MAX_IDS_PER_INPUT = 8192
#: tokens of all inputs together, as the embedder counts them (OpenAI's per-request limit)
MAX_TOTAL_TOKENS = 300_000
#: the largest token id: cl100k_base has ids 0..100276 (some unassigned, refused too)
MAX_TOKEN_ID = N_VOCAB - 1
#: the ordinary tokens are 0..MAX_RANK_ID; the rest up to MAX_TOKEN_ID are these special ones
MAX_RANK_ID = min(SPECIAL_TOKENS) - 2
SPECIAL_TOKEN_IDS = frozenset(SPECIAL_TOKENS)
TOKEN_ENCODING = "cl100k_base"


@dataclass
class Inputs:
    texts: list[str]
    #: True when the texts came as token-id arrays (decoded from cl100k_base)
    from_tokens: bool


def _is_id(v: Any) -> bool:
    return type(v) is int  # not bool, not float


def _decode(ids: list[Any], where: str) -> str:
    if len(ids) > MAX_IDS_PER_INPUT:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"{where} has {len(ids)} token ids; at most {MAX_IDS_PER_INPUT} are allowed", param="input"
        )
    decoder = token_decoder()
    bad = decoder.unknown(ids)
    if bad is not None:
        value = ids[bad]
        shown = str(value) if len(str(value)) <= 40 else str(value)[:40] + "..."
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"{where}[{bad}] = {shown} is not a token id of {TOKEN_ENCODING} (token ids are OpenAI's {TOKEN_ENCODING} ids, "
            f"0..{MAX_TOKEN_ID} less a few unassigned ones)",
            param="input",
        )
    return decoder.decode(ids)


def parse_input(value: Any) -> Inputs:
    """The texts of ``input`` (token arrays decoded), or PlinthError(400) naming ``input``."""
    if isinstance(value, str):
        texts, from_tokens = [value], False
    elif isinstance(value, list):
        if not value:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "input must not be an empty list", param="input")
        if all(_is_id(v) for v in value):  # one text as token ids
            texts, from_tokens = [_decode(value, "input")], True
        elif len(value) > MAX_INPUTS:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"input has {len(value)} items; at most {MAX_INPUTS} are allowed", param="input")
        elif all(isinstance(v, str) for v in value):
            texts, from_tokens = list(value), False
        elif all(isinstance(v, list) for v in value):
            texts = []
            for i, ids in enumerate(value):
                if not ids:
                    raise PlinthError(ErrorCode.INVALID_REQUEST, f"input[{i}] is an empty token array", param="input")
                if not all(_is_id(t) for t in ids):
                    raise PlinthError(ErrorCode.INVALID_REQUEST, f"input[{i}] must be an array of integer token ids", param="input")
                texts.append(_decode(ids, f"input[{i}]"))
            from_tokens = True
        else:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                "input must be a string, a list of strings, an array of token ids or a list of token-id arrays (not a mixture)",
                param="input",
            )
    else:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            "input must be a string, a list of strings, an array of token ids or a list of token-id arrays",
            param="input",
        )
    single = isinstance(value, str) or (bool(value) and _is_id(value[0]))  # one text, not a list of them
    for i, t in enumerate(texts):
        if not t.strip():
            raise PlinthError(ErrorCode.INVALID_REQUEST, "input is empty" if single else f"input[{i}] is empty", param="input")
    return Inputs(texts, from_tokens)


def embedder_named(knowledge: KnowledgeService, model: str) -> Embedder:
    """The configured embedder, when ``model`` names it (backend or model name)."""
    emb = knowledge.default_embedder()
    base = emb.model_id.split("@")[0]
    names = {emb.name.lower(), emb.model_id.lower(), base.lower(), base.split("/")[-1].lower()}
    if model.lower() not in names:
        raise PlinthError(
            ErrorCode.MODEL_NOT_FOUND,
            f"embedding model {model!r} does not exist here; use {emb.name!r} ({base})",
            param="model",
        )
    return emb


def truncate(vectors: Any, dimensions: int | None) -> Any:
    """The first ``dimensions`` components of each row, rescaled to unit length."""
    import numpy as np

    if dimensions is None or dimensions == vectors.shape[1]:
        return vectors
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return (cut / np.maximum(norms, 1e-12)).astype(np.float32)


def create_embeddings(
    knowledge: KnowledgeService,
    *,
    model: str,
    input: Any,
    encoding_format: str = "float",
    dimensions: int | None = None,
) -> tuple[dict[str, Any], Embedder, int]:
    """The OpenAI answer for one request, the embedder used and the number of inputs."""
    emb = embedder_named(knowledge, model)
    inputs = parse_input(input)
    if dimensions is not None and not 1 <= dimensions <= emb.dim:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"dimensions={dimensions} is not supported: {model} has {emb.dim} dimensions (ask for 1..{emb.dim})",
            param="dimensions",
        )
    texts = inputs.texts
    counts = emb.count_tokens_many(texts)
    for i, n in enumerate(counts):
        if n > emb.max_tokens:
            hint = (
                f"; the text came as {TOKEN_ENCODING} token ids (LangChain's OpenAIEmbeddings): give it a smaller "
                "embedding_ctx_length, e.g. 128, so it splits long texts into pieces the model can take"
                if inputs.from_tokens
                else ""
            )
            raise PlinthError(
                ErrorCode.CONTEXT_LENGTH_EXCEEDED,
                f"input[{i}] has {n} tokens; {model} embeds at most {emb.max_tokens}{hint}",
                param="input",
            )
    total = sum(counts)
    if total > MAX_TOTAL_TOKENS:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"input has {total} tokens in all; at most {MAX_TOTAL_TOKENS} per request: send it in several requests",
            param="input",
        )
    vectors = truncate(emb.embed(texts), dimensions)
    data = []
    for i, v in enumerate(vectors):
        value: Any = base64.b64encode(v.astype("<f4").tobytes()).decode() if encoding_format == "base64" else v.tolist()
        data.append({"object": "embedding", "index": i, "embedding": value})
    answer = {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": total, "total_tokens": total}}
    return answer, emb, len(texts)


__all__ = [
    "MAX_IDS_PER_INPUT",
    "MAX_INPUTS",
    "MAX_RANK_ID",
    "MAX_TOKEN_ID",
    "MAX_TOTAL_TOKENS",
    "SPECIAL_TOKEN_IDS",
    "create_embeddings",
    "parse_input",
]
