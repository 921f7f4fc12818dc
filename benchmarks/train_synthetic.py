"""Seeded synthetic text for the training rehearsal and the GPU script: words with a Zipf law, no download.

Words are `w` + a base-26 spelling of their rank, four letters at least (`wbaaa`, `wbaab`, ...): letters only, so a
BERT tokenizer whose vocabulary holds them keeps each word one token, every word spells differently, and a text's
bytes per word (6 with the space) are those of English. A query draws a few words, a
passage about 60 (MS MARCO passages average 56 words), both from the same Zipf law, so term frequencies and the
length of a tokenised text look like those of real text to the model and the tokenizer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def word(rank: int) -> str:
    """The word of a 0-based rank: 'wbaaa', 'wbaab', ... (letters only, all distinct, 5 characters at least)."""
    rank += 26**3  # four letters from the start
    letters = []
    while True:
        rank, digit = divmod(rank, 26)
        letters.append(chr(ord("a") + digit))
        if rank == 0:
            break
    return "w" + "".join(reversed(letters))


class ZipfWords:
    """Draws texts of words from a Zipf law over `vocab` words, seeded.

    Args:
        vocab: number of distinct words.
        exponent: the Zipf exponent (1.0: the classic law of natural text).
        seed: the random generator's seed.
    """

    def __init__(self, vocab: int = 30_000, exponent: float = 1.0, seed: int = 42):
        self.words = np.array([word(r) for r in range(vocab)], dtype=object)
        weights = 1.0 / np.arange(1, vocab + 1) ** exponent
        self.cdf = np.cumsum(weights / weights.sum())
        self.rng = np.random.default_rng(seed)

    def texts(self, count: int, mean_words: float, min_words: int = 2) -> list[str]:
        """`count` texts whose lengths are Poisson around `mean_words` (at least `min_words`).

        Returns:
            The texts, words separated by one space.
        """
        lengths = np.maximum(self.rng.poisson(mean_words, size=count), min_words)
        ranks = np.searchsorted(self.cdf, self.rng.random(int(lengths.sum())))
        ranks = np.minimum(ranks, len(self.words) - 1)
        tokens = self.words[ranks]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        return [" ".join(tokens[bounds[i]:bounds[i + 1]]) for i in range(count)]


def write_wordpiece_tokenizer(folder: str | Path, vocab: int) -> None:
    """A BERT (WordPiece, lower-case) tokenizer over the special tokens, the letters and the first `vocab` words,
    saved with save_pretrained: what a model folder needs, made offline.

    Args:
        folder: the model folder to write the tokenizer files into.
        vocab: the number of synthetic words in the vocabulary.
    """
    from transformers import BertTokenizerFast  # heavy: only the scripts that build a model need it

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = [*SPECIAL_TOKENS, *letters, *(f"##{c}" for c in letters), *(word(r) for r in range(vocab))]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True).save_pretrained(str(folder))
