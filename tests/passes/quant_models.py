"""Models and data for the quantization quality tests: all-MiniLM-L6-v2 (real weights, its own
tokenizer, offline) imported once per session, and a small LLaMA fitted to a synthetic
next-token task so its weights carry signal."""

from __future__ import annotations

import functools
import os

import numpy as np

from tests.models import build_minilm, minilm_dir

# Calibration and evaluation sentences are disjoint; both vary in length and topic.
CALIBRATION_SENTENCES = [
    "The committee approved the new budget after a long debate.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "She ordered a cappuccino and a slice of lemon cake.",
    "Quantum computers use qubits that can exist in superposition.",
    "The train to Berlin was delayed by forty minutes this morning.",
    "Please remember to water the tomatoes while I am away.",
    "Stock markets fell sharply amid fears of rising interest rates.",
    "A compiler translates source code into machine instructions.",
    "The museum reopened its ancient Egypt gallery last week.",
    "Heavy rain caused flooding in several coastal towns.",
    "He practiced the violin for three hours every day.",
    "Neural networks learn representations from large datasets.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Astronomers discovered a planet orbiting a distant red dwarf.",
    "Our flight was cancelled, so we stayed another night in Lisbon.",
    "The doctor recommended more sleep and less coffee.",
    "Volcanic eruptions can affect the global climate for years.",
    "The children built a sandcastle with towers and a moat.",
    "Encryption protects data as it travels across the internet.",
    "The novel explores memory, loss and the meaning of home.",
    "Electric cars are becoming cheaper to buy and to run.",
    "The referee showed a red card in the final minute.",
    "Bees communicate the location of flowers through a dance.",
    "The startup raised twenty million dollars in its first round.",
    "Fresh snow covered the mountain trails overnight.",
    "Learning a new language takes patience and practice.",
    "The bridge was designed to withstand strong earthquakes.",
    "Grandma's garden is full of roses, mint and sunflowers.",
    "The software update fixed a bug that drained the battery.",
    "Whales migrate thousands of kilometres every year.",
    "The orchestra played Beethoven's ninth symphony.",
    "Ice cream sales rise during the summer heat wave.",
]
EVAL_SENTENCES = [
    "A man is playing a guitar on the street corner.",
    "The cat sleeps on the warm windowsill all afternoon.",
    "Interest rates were raised by a quarter of a percentage point.",
    "How do I reset my password if I forgot my email?",
    "The spacecraft entered orbit around Mars after a seven-month journey.",
    "Fresh bread smells wonderful early in the morning.",
    "The team won the championship for the third year in a row.",
    "Vaccines train the immune system to recognize pathogens.",
    "I can't believe how quickly this year has gone by!",
    "The ancient castle stands on a hill above the village.",
    "Machine translation has improved dramatically in recent years.",
    "Turn left at the second traffic light and park behind the bank.",
    "Her research focuses on protein folding and drug design.",
    "Thunderstorms are expected across the region tonight.",
    "The library extended its opening hours during exam season.",
    "Solar panels convert sunlight directly into electricity.",
    "He apologized for missing the meeting on Tuesday.",
    "lmc compiles models ahead of time.",
]


@functools.cache
def tokenizer():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir())


def tokenize(sentences: list[str]) -> list[np.ndarray]:
    """[input_ids, attention_mask] (int64), padded to the longest sentence."""
    enc = tokenizer()(sentences, padding=True, return_tensors="np")
    return [enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)]


def calibration_set(batch: int = 8) -> list[list[np.ndarray]]:
    s = CALIBRATION_SENTENCES
    return [tokenize(s[i : i + batch]) for i in range(0, len(s), batch)]


@functools.cache
def minilm_graph():
    """The imported, default-optimized MiniLM graph (callers copy before changing it)."""
    from lmc.frontend import import_model
    from lmc.passes import DEFAULT_PIPELINE, Pipeline

    zm = build_minilm()
    g, _ = import_model(zm.module, zm.example_inputs, dynamic_shapes=zm.dynamic_shapes)
    return Pipeline(DEFAULT_PIPELINE).run(g)


def embed(g, sentences: list[str] = EVAL_SENTENCES, batch: int = 9) -> np.ndarray:
    """Sentence embeddings through the reference interpreter (batches within the bounds)."""
    from lmc.ir import run

    parts = [run(g, tokenize(sentences[i : i + batch]))[0] for i in range(0, len(sentences), batch)]
    return np.concatenate(parts)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.min(num / den))
