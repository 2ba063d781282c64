"""BLEU and ROUGE on token lists, as the paper scored its text tasks (Section 3.3).

Both take what the decoder produced and the references as token lists, so the scores are of our
tokens exactly: BLEU through sacrebleu with ``tokenize="none"`` on space-joined tokens (what the
release's ``multi-bleu.perl`` on lower-cased tokenised text computes), ROUGE-1/2/L F1 through
rouge-score with every distinct token first mapped to a plain ASCII word (rouge-score's own
tokeniser lower-cases and drops every non-ASCII character, which would erase Chinese or
Vietnamese; ROUGE-1.5.5 as released was run on characters for LCSTS).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..metrics.figures import percent_of

INSTALL_HINT = 'pip install "labelemb[seq2seq]" (sacrebleu and rouge-score)'


@dataclass
class Bleu:
    """Corpus BLEU (0-100) and sacrebleu's signature, which says how it was computed."""

    score: float
    signature: str


def bleu(hypotheses: list[list[str]], references: list[list[str]]) -> Bleu:
    """Corpus BLEU of tokenised hypotheses against one tokenised reference each."""
    _check_pairs(hypotheses, references)
    try:
        from sacrebleu.metrics import BLEU  # lazy: the seq2seq extra
    except ImportError:
        raise ImportError(f"BLEU needs sacrebleu: {INSTALL_HINT}") from None
    metric = BLEU(tokenize="none", force=True)
    result = metric.corpus_score([" ".join(h) for h in hypotheses], [[" ".join(r) for r in references]])
    return Bleu(score=float(result.score), signature=str(metric.get_signature()))


def rouge(hypotheses: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 (0-100) over the examples, on the tokens as given."""
    _check_pairs(hypotheses, references)
    try:
        from rouge_score import rouge_scorer  # lazy: the seq2seq extra
    except ImportError:
        raise ImportError(f"ROUGE needs rouge-score: {INSTALL_HINT}") from None
    ascii_name: dict[str, str] = {}

    def encoded(tokens: list[str]) -> str:
        return " ".join(ascii_name.setdefault(token, f"t{len(ascii_name)}") for token in tokens)

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hypothesis, reference in zip(hypotheses, references):
        scores = scorer.score(encoded(reference), encoded(hypothesis))  # (target, prediction)
        for name in totals:
            totals[name] += scores[name].fmeasure
    return {name: percent_of(total, len(hypotheses)) for name, total in totals.items()}


def _check_pairs(hypotheses: list[list[str]], references: list[list[str]]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references: one each")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
