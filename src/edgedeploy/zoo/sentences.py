"""Offline English sentences for sentence-embedding fidelity: the docstrings of the Python standard library.

What the set is: every docstring of the interpreter's standard library (``sysconfig`` "stdlib" folder; test
suites, idlelib and lib2to3 left out), read with ``ast`` (nothing is imported), split into paragraphs and
sentences, and kept when a sentence looks like plain prose: 6-40 words, ASCII, starts upper-case, ends with a
period, at least 85% letters, no markup or code characters (backticks, brackets, ``=``, ``_``, ``()`` ...).
Sentences are deduplicated case-insensitively (CPython 3.11.7: 8,142 sentences in 4,734 docstrings).
Docstrings are ordered by a SHA-1 of their first sentence (a deterministic shuffle) and split by docstring, so
no docstring feeds both sides: the first ``n_eval`` docstrings are the evaluation set, the rest training text.

Evaluation corpus: the first sentence (the summary) of each evaluation docstring. Two kinds of query, each
retrieving its source among the whole corpus (recall@1):

* paraphrase-like rewrites of the first ``n_pairs`` corpus sentences (a small synonym table, the clause after
  the first comma moved to the front, about a fifth of the words dropped). They keep most words: a TF-IDF
  retriever finds 100% of them, so they only expose a badly damaged encoder;
* context pairs: the second sentence of each evaluation docstring that has one (up to ``n_pairs``) must find
  its docstring's summary. Few words are shared (TF-IDF: 31%, MiniLM-L6: 38% on 400 pairs): this one measures
  meaning.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ShapeError

_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "__pycache__"}
_BAD_CHARS = set("`<>{}[]=|\\@#$%^~*_")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_NOT_PROSE = (" ", "\t", ">>>", "-", "*", ":", "..", "+")
_EXTRACTOR = 1      # bump when _prose / _parse change (invalidates the docstring cache)
SYNONYMS = {
    "return": "give back", "returns": "gives back", "returned": "given back", "specified": "given",
    "argument": "parameter", "arguments": "parameters", "function": "routine", "functions": "routines",
    "method": "routine", "methods": "routines", "object": "instance", "objects": "instances",
    "create": "make", "creates": "makes", "created": "made", "value": "result", "values": "results",
    "raise": "throw", "raises": "throws", "raised": "thrown", "file": "document", "files": "documents",
    "default": "standard", "string": "text", "strings": "texts", "list": "sequence", "called": "invoked",
    "used": "employed", "use": "employ", "should": "ought to", "must": "has to", "error": "failure",
    "empty": "blank", "new": "fresh", "begin": "start", "end": "finish", "remove": "delete",
    "removes": "deletes", "contains": "holds", "contain": "hold", "current": "present", "given": "supplied",
}


@dataclass(frozen=True)
class SentenceSet:
    """Evaluation corpus, queries (``*_targets[i]`` = corpus index of query i's source), training sentences."""

    sentences: tuple[str, ...]
    queries: tuple[str, ...]            # paraphrase-like rewrites of corpus sentences
    targets: tuple[int, ...]
    context_queries: tuple[str, ...]    # second sentence of a docstring; its source is the docstring's summary
    context_targets: tuple[int, ...]
    train: tuple[str, ...]
    source: str

    def texts(self) -> list[str]:
        """The texts to embed for ``embedding_fidelity``: the corpus, the rewrites, then the context queries."""
        return list(self.sentences) + list(self.queries) + list(self.context_queries)


@dataclass(frozen=True)
class EmbeddingFidelity:
    """How closely a compressed encoder's embeddings follow the reference encoder's on a SentenceSet."""

    cosine_mean: float        # mean cosine to the reference embedding, over corpus and queries
    cosine_min: float
    nn_agreement: float       # fraction of corpus sentences whose nearest other sentence is the reference's
    nn_near_ties: float       # fraction whose reference top-2 similarities are within TIE_GAP (crowded neighbours)
    nn_agreement_clear: float  # NN agreement on the other sentences (a clear nearest neighbour in the reference)
    recall_at_1: float        # paraphrase-like rewrites whose top-1 corpus match is their source (this model)
    recall_at_1_reference: float
    context_recall_at_1: float          # same for the context pairs (meaning, little shared wording)
    context_recall_at_1_reference: float
    n_sentences: int
    n_queries: int
    n_context_queries: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def table(self) -> Any:
        """A rich Table of the numbers."""
        from rich.table import Table

        t = Table(title=f"embedding fidelity ({self.n_sentences} sentences, {self.n_queries} + "
                        f"{self.n_context_queries} queries)")
        t.add_column("metric")
        t.add_column("value", justify="right")
        for k, v in self.to_dict().items():
            t.add_row(k.replace("_", " "), f"{v:.4f}" if isinstance(v, float) else str(v))
        return t

    def __str__(self) -> str:
        from io import StringIO

        from rich.console import Console

        buf = StringIO()
        Console(file=buf, width=100).print(self.table())
        return buf.getvalue()


def _stdlib_root() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["stdlib"])


def _prose(doc: str) -> list[str]:
    """Plain-prose sentences of one docstring (code, lists, fields and markup paragraphs are skipped)."""
    out = []
    for para in re.split(r"\n\s*\n", doc):
        lines = para.splitlines()
        if not lines or any(line.startswith(_NOT_PROSE) for line in lines):
            continue
        for s in _SENTENCE_END.split(" ".join(line.strip() for line in lines)):
            words = s.split()
            s = " ".join(words)
            if not (6 <= len(words) <= 40 and s.isascii() and s[0].isupper() and s.endswith(".")):
                continue
            if any(c in _BAD_CHARS for c in s) or "()" in s or ".." in s:
                continue
            if sum(c.isalpha() for c in s) < 0.85 * sum(not c.isspace() for c in s):
                continue
            out.append(s)
    return out


def _sources(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*.py")) if not _SKIP_DIRS & set(p.relative_to(folder).parts)]


def _parse(files: list[Path]) -> list[tuple[str, ...]]:
    import ast

    seen: set[str] = set()
    docs = []
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue                       # a few stdlib files are deliberately invalid or not UTF-8
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                fresh = []
                for x in _prose(doc) if doc else ():
                    if x.lower() not in seen:
                        seen.add(x.lower())
                        fresh.append(x)
                if fresh:
                    docs.append(tuple(fresh))
    return docs


@lru_cache(maxsize=2)
def docstrings(root: str | None = None) -> tuple[tuple[str, ...], ...]:
    """Prose sentences of every docstring under ``root`` (default: the stdlib), deduplicated, in SHA-1 order.

    Parsing the stdlib takes seconds, so the result is cached in edgedeploy's cache root (``_io.cache_root()``)
    under a key made of the Python version, the folder, every source file's size and mtime and this
    extractor's version; any change re-parses.
    """
    import json
    import sys

    from .._io import cache_root, write_json_atomic

    folder = Path(root) if root else _stdlib_root()
    if not folder.is_dir():
        raise ConfigError(f"no Python sources at {folder}; pass root= a folder of .py files")
    files = _sources(folder)
    listing = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = hashlib.sha1(json.dumps([_EXTRACTOR, sys.version, str(folder), listing]).encode()).hexdigest()[:20]
    cache = cache_root() / f"docstrings-{key}.json"
    try:
        docs = [tuple(d) for d in json.loads(cache.read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        docs = _parse(files)
        try:
            write_json_atomic(cache, docs)
        except OSError:
            pass                           # a read-only home only costs the parse next time
    return tuple(sorted(docs, key=lambda d: hashlib.sha1(d[0].encode()).hexdigest()))


def paraphrase(sentence: str, seed: int = 0) -> str:
    """A seeded paraphrase-like rewrite: synonyms, the clause after the first comma moved first, ~20% words dropped."""
    rng = random.Random(f"{seed}:{sentence}")
    body = sentence.rstrip(".")
    head, comma, tail = body.partition(", ")
    if comma and len(head.split()) >= 3 and len(tail.split()) >= 3:
        body = f"{tail[0].upper()}{tail[1:]}, {head[0].lower()}{head[1:]}"
    words = []
    for w in body.split():
        key = w.lower().strip(",;:")
        if key in SYNONYMS and rng.random() < 0.7:
            rep = SYNONYMS[key] + w[len(w.rstrip(",;:")):]
            w = rep[0].upper() + rep[1:] if w[0].isupper() else rep
        words.append(w)
    n_drop = max(1, round(0.2 * len(words))) if len(words) >= 8 else 0
    drop = set(rng.sample(range(1, len(words)), n_drop)) if n_drop else set()
    out = " ".join(w for i, w in enumerate(words) if i not in drop) + "."
    return out if out != sentence else sentence.lower()


def load_sentences(n_eval: int = 1500, n_pairs: int = 500, seed: int = 0, root: str | None = None) -> SentenceSet:
    """``n_eval`` summary sentences, up to ``n_pairs`` queries of each kind, and the training sentences."""
    docs = docstrings(root)
    if not 0 < n_pairs <= n_eval < len(docs):
        raise ConfigError(f"need 0 < n_pairs <= n_eval < {len(docs)} (the docstrings available); "
                          f"got n_pairs={n_pairs}, n_eval={n_eval}")
    evals = docs[:n_eval]
    corpus = tuple(d[0] for d in evals)
    context = [(d[1], i) for i, d in enumerate(evals) if len(d) > 1][:n_pairs]
    src = f"docstrings of the Python standard library at {Path(root) if root else _stdlib_root()}"
    return SentenceSet(corpus, tuple(paraphrase(x, seed) for x in corpus[:n_pairs]), tuple(range(n_pairs)),
                       tuple(c for c, _ in context), tuple(i for _, i in context),
                       tuple(x for d in docs[n_eval:] for x in d), src)


def scoring_batches(tokenizer: Any, max_length: int = 128, n: int = 256, batch_size: int = 32) -> list[dict[str, Any]]:
    """``n`` training-side stdlib docstring sentences as tokenized batches (real English to score heads and units on)."""
    train = load_sentences().train
    if not train:
        raise ConfigError("no stdlib docstring sentences were found to score on; pass data batches instead")
    texts = train[:n]
    return [tokenize(tokenizer, texts[i:i + batch_size], max_length) for i in range(0, len(texts), batch_size)]


def training_batches(tokenizer: Any, texts: tuple[str, ...] | list[str], batch_size: int = 32,
                     max_length: int = 64) -> Any:
    """``epoch -> tokenized batches`` for ``distill``: sentences of similar length share a batch (little padding),
    and the batch order is reshuffled every epoch (seeded by the epoch). Each batch is tokenized once."""
    if not texts or batch_size < 1:
        raise ConfigError(f"training_batches needs texts and batch_size >= 1 (got {len(texts)} texts, {batch_size})")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    fixed = [tokenize(tokenizer, [texts[j] for j in order[i:i + batch_size]], max_length)
             for i in range(0, len(order), batch_size)]

    def batches(epoch: int) -> list[dict[str, Any]]:
        picked = list(fixed)
        np.random.default_rng(epoch).shuffle(picked)
        return picked

    return batches


#: installed libraries whose docstrings can add training text (each read like the stdlib, if installed)
LIBRARIES = ("numpy", "scipy", "sklearn", "sympy", "networkx", "matplotlib", "skimage", "torch", "transformers",
             "huggingface_hub", "setuptools", "pip", "nncf", "optuna", "onnx", "PIL", "rich")


def library_sentences(sset: SentenceSet, libraries: tuple[str, ...] = LIBRARIES) -> tuple[str, ...]:
    """More training text: prose sentences from the docstrings of installed ``libraries`` (missing ones are
    skipped), deduplicated, minus every sentence of ``sset``'s evaluation side; the order is deterministic."""
    import importlib.util

    held_out = {x.lower() for x in (*sset.sentences, *sset.queries, *sset.context_queries)}
    seen = {x.lower() for x in sset.train} | held_out
    out = []
    for name in libraries:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for doc in docstrings(str(Path(list(spec.submodule_search_locations)[0]))):
            for x in doc:
                if x.lower() not in seen:
                    seen.add(x.lower())
                    out.append(x)
    return tuple(out)


#: reference top-2 similarity gap below which a sentence's nearest neighbour counts as a near tie: on the stdlib
#: set, 16% of the 1,500 summaries; isotropic noise at cosine 0.975 already flips 17% of all nearest neighbours
TIE_GAP = 0.01


def embedding_fidelity(reference: np.ndarray, candidate: np.ndarray, sset: SentenceSet) -> EmbeddingFidelity:
    """Cosine (mean, min), nearest-neighbour agreement and recall@1 of ``candidate`` vs ``reference`` embeddings.

    Both are the embeddings of ``sset.texts()`` (corpus, rewrites, context queries), one row per text.
    """
    n, q, c = len(sset.sentences), len(sset.queries), len(sset.context_queries)
    ref, got = (np.asarray(a, dtype=np.float64) for a in (reference, candidate))
    if ref.shape != got.shape or ref.ndim != 2 or ref.shape[0] != n + q + c:
        raise ShapeError(f"embeddings must both be ({n + q + c}, dim) for the {n} sentences + {q + c} queries of the "
                         f"set; got reference {ref.shape} and candidate {got.shape}")
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True).clip(1e-12)
    got = got / np.linalg.norm(got, axis=1, keepdims=True).clip(1e-12)
    cos = np.sum(ref * got, 1)

    def similarities(e: np.ndarray) -> np.ndarray:
        sim = e[:n] @ e[:n].T
        np.fill_diagonal(sim, -np.inf)
        return sim

    ref_sim = similarities(ref)
    top2 = np.sort(ref_sim, 1)[:, -2:] if n >= 2 else np.zeros((n, 2))
    clear = (top2[:, 1] - top2[:, 0]) >= TIE_GAP
    same = ref_sim.argmax(1) == similarities(got).argmax(1)

    def recall(e: np.ndarray, lo: int, hi: int, targets: tuple[int, ...]) -> float:
        return float(np.mean((e[lo:hi] @ e[:n].T).argmax(1) == np.asarray(targets))) if hi > lo else float("nan")

    rw, cx = (n, n + q, sset.targets), (n + q, n + q + c, sset.context_targets)
    return EmbeddingFidelity(float(cos.mean()), float(cos.min()), float(np.mean(same)), float(1.0 - clear.mean()),
                             float(same[clear].mean()) if clear.any() else float("nan"),
                             recall(got, *rw), recall(ref, *rw), recall(got, *cx), recall(ref, *cx), n, q, c)


class SentenceEncoder(nn.Module):
    """A Hugging Face encoder + attention-masked mean pooling + L2 normalisation (how all-MiniLM-L6-v2 embeds)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)


def tokenize(tokenizer: Any, texts: list[str] | tuple[str, ...], max_length: int = 128) -> dict[str, torch.Tensor]:
    """Padded int64 ``input_ids`` / ``attention_mask`` tensors (truncated to ``max_length`` tokens)."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": enc["input_ids"].long(), "attention_mask": enc["attention_mask"].long()}


def encode(model: Any, texts: list[str] | tuple[str, ...], tokenizer: Any, batch_size: int = 64,
           max_length: int = 128) -> np.ndarray:
    """L2-normalised sentence embeddings, one row per text, from a torch encoder or an edgedeploy runtime Session.

    ``model``: a Hugging Face encoder (wrapped in a SentenceEncoder: mean pooling over the attention mask), a
    SentenceEncoder, or a Session of an exported one (``export_encoder``; its first output is the embedding).
    Texts are batched by length (less padding); rows come back in the given order.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1 (got {batch_size})")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 0), dtype=np.float32)
    rows: list[np.ndarray] = []
    module = model if isinstance(model, nn.Module) else None
    pool = SentenceEncoder(module) if module is not None and not isinstance(module, SentenceEncoder) else module
    if pool is not None:
        pool.eval()
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            feed = tokenize(tokenizer, [texts[j] for j in order[i:i + batch_size]], max_length)
            if pool is not None:
                emb = pool(**feed).float().numpy()
            else:
                emb = np.asarray(model.run({k: v.numpy() for k, v in feed.items()})[0], dtype=np.float32)
            rows.append(emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12))
    if rows:
        out = np.zeros((len(texts), rows[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(rows)
    return out


def export_encoder(model: nn.Module, example_inputs: tuple[torch.Tensor, torch.Tensor], out: str | Path,
                   name: str = "encoder") -> Any:
    """Export ``SentenceEncoder(model)`` to ``out/<name>.onnx`` (inputs ``input_ids``, ``attention_mask``; batch
    and sequence dynamic; output ``embedding``), parity-checked on ONNX Runtime; returns the ExportResult."""
    from ..export.onnx import OnnxConfig, export_onnx

    names = ("input_ids", "attention_mask")
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"embedding": {0: "batch"}}
    # transformers branches on `padding_mask.all()` only outside tracing; while tracing it keeps the general
    # masked path, which is right for padded and unpadded batches alike (the parity gate checks varied inputs)
    config = OnnxConfig(exporter="torchscript", opset=17, input_names=names, output_names=("embedding",),
                        dynamic_axes=axes, allow_data_dependent=True)
    encoder = model if isinstance(model, SentenceEncoder) else SentenceEncoder(model)
    return export_onnx(encoder.eval(), tuple(example_inputs), config, out=out, name=name)
