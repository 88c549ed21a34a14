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
    "After the storm passed, the fishermen repaired their nets and counted the boats that had"
    " drifted away from the harbour.",
    "The new regulation requires banks to hold more capital against risky loans and to report"
    " their exposures every quarter.",
    "My neighbour's dog barks at every cyclist who rides past the garden gate, even the"
    " postman he has known for years.",
    "Researchers measured the concentration of microplastics in river sediments at twelve"
    " sites along the Danube.",
    "If you mix baking soda with vinegar, the reaction releases carbon dioxide and the mixture"
    " fizzes loudly.",
    "The goalkeeper saved two penalties, and the crowd chanted his name long after the final"
    " whistle.",
    "Our quarterly report shows revenue grew by eight percent while operating costs stayed"
    " roughly flat.",
    "The hospital introduced a new triage system to shorten waiting times in the emergency"
    " department.",
    "She wrote her dissertation on medieval trade routes between Venice and the cities of the"
    " Black Sea.",
    "To install the package, run the setup script and then restart the terminal so the path is"
    " updated.",
    "The glacier has retreated nearly two kilometres since the first photographs were taken in"
    " 1910.",
    "A gentle breeze carried the smell of pine needles and wood smoke across the quiet campsite.",
    "The court ruled that the contract was void because one party had been misled about the price.",
    "Children who read for pleasure tend to develop a richer vocabulary than those who do not.",
    "The chef seared the scallops in brown butter and served them with a purée of cauliflower.",
    "During the blackout, the city relied on diesel generators to keep hospitals and water"
    " pumps running.",
    "Why does the sky turn red at sunset while it looks blue in the middle of the day?",
    "The algorithm sorts the list in place and runs in linear time when the input is nearly"
    " sorted.",
    "Farmers in the valley switched to drip irrigation after three dry summers in a row.",
    "The violinist's performance was so moving that several people in the audience wept.",
    "Wildfires forced thousands of residents to evacuate, and smoke drifted hundreds of miles"
    " east.",
    "The museum's collection includes fossils, meteorites and a complete skeleton of a mammoth.",
    "Please send me the slides before Friday so I can review them over the weekend.",
    "The detective noticed that the clock on the mantelpiece had stopped at a quarter past nine.",
    "Sea otters use stones as tools to crack open shellfish while floating on their backs.",
    "The government announced a plan to build two hundred thousand affordable homes by 2030.",
    "Our hiking group reached the summit just before noon and ate lunch beside a frozen lake.",
    "The startup's app lets users split restaurant bills and track shared expenses with friends.",
    "Antibiotics do not work against viruses, so they will not cure a common cold.",
    "The old lighthouse keeper kept a diary of every ship that passed the rocky point.",
    "Inflation eased slightly in March, but food and energy prices remained stubbornly high.",
    "The robot vacuum maps each room and returns to its dock when the battery runs low.",
    "Jazz musicians often improvise solos over a repeating sequence of chords.",
    "The villagers celebrated the harvest with music, dancing and long tables of food in the"
    " square.",
    "A sudden drop in air pressure usually signals that a storm is on its way.",
    "The professor asked the students to compare two translations of the same ancient poem.",
    "Honey never spoils if it is stored in a sealed container away from moisture.",
    "The airline apologised for the delay and offered every passenger a meal voucher.",
    "Coral reefs cover less than one percent of the ocean floor but support a quarter of"
    " marine species.",
    "He fixed the leaking tap himself after watching a short video on the internet.",
    "The election results were announced shortly after midnight, and the winner thanked her"
    " supporters.",
    "Graph databases store relationships directly, which makes traversing networks of friends"
    " fast.",
    "The painter used thick layers of ochre and blue to capture the light on the cliffs.",
    "Owls can rotate their heads about two hundred and seventy degrees without moving their"
    " bodies.",
    "The factory cut its water use in half by recycling the cooling water from its furnaces.",
    "Do you know whether the pharmacy on the corner is open on Sunday afternoons?",
    "The marathon route winds through the old town, across two bridges and along the river.",
    "Scientists sequenced the genome of a wheat variety that tolerates salty soil.",
    "The teenager saved money from his summer job to buy a second-hand motorbike.",
    "Tax returns must be filed by the end of April, or a late penalty will be charged.",
    "The submarine descended slowly into the trench, its lights revealing strange pale creatures.",
    "Good documentation explains not only how a function works but also why it exists.",
    "The bakery sells out of croissants by eight o'clock most mornings.",
    "A new vaccine against malaria showed promising results in a trial with young children.",
    "The negotiators worked through the night and reached an agreement just before dawn.",
    "Penguins huddle together in large groups to survive the Antarctic winter.",
    "The city council voted to turn the abandoned railway line into a park and cycle path.",
    "Her grandmother taught her to knit when she was seven years old.",
    "The satellite transmits images of the Earth's surface every ninety minutes.",
    "Several shops on the high street closed after the shopping centre opened outside town.",
    "The composer finished the opera only weeks before his death.",
    "Rainforests produce a large share of the world's oxygen and store vast amounts of carbon.",
    "The customer service agent solved my problem in less than five minutes.",
    "Long-distance running places heavy demands on the heart, lungs and joints.",
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
