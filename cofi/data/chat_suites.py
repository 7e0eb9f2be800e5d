"""Natural-language suites for a real chat model, made here, seeded (pure: no I/O).

Where the symbolic world (:mod:`cofi.data.world`) stands in for an aligned model's abilities, these ask a
real one in English, through its chat template:

- ``know``: multiple choice on well-known public facts (capitals, chemical symbols, authors,
  units, science and history), three distractors of the same kind; validation and test are
  disjoint halves of the fact bank (206 facts: 103 each, so a test split has over 100 items).
- ``reason``: arithmetic word problems (one or two steps, small numbers), scored on the number.
- ``instruct``: IFEval-style verifiable instructions: a short writing task plus a format the
  response must follow (capitals, an ending, bullets, JSON, ...), checked by lm-evaluation-harness's
  IFEval checkers (:mod:`cofi.evaluation.instructions`).
- speciality ``facts`` (knowledge injection): facts about invented countries, trained in two
  phrasings, asked in held-out ones (validation and test phrasings differ);
- speciality ``dates`` (a skill): a date written out in words, rewritten as ISO 8601 (YYYY-MM-DD).
- ``versatility_train``: a replay mixture of word problems and instruction items with responses
  that pass their checks; no ``know`` fact and no test or validation item is in it.
"""

from __future__ import annotations

import datetime
import json
import random
from dataclasses import dataclass

from cofi.config.settings import setting

SPLITS = ("versatility_train", "know_test", "know_val", "reason_test", "reason_val", "instruct_test", "instruct_val",
          "facts_train", "facts_val", "facts_test", "dates_train", "dates_val", "dates_test")
TASK_TYPES = {"facts": "generation", "dates": "generation"}
SUITE_TYPES = {"know": "multiple_choice", "reason": "generation", "instruct": "instruction_following"}
FITS_EMBEDDED_MODEL = False  # English for a real tokenizer: the embedded word-level model cannot read it


@dataclass(frozen=True)
class ChatSuitesSpec:
    """Sizes of the natural-language suites (embedded.chat)."""

    seed: int = setting(0, "seed of every random choice in the suites")
    test_items: int = setting(100, "items of each reason, instruct and dates test and validation split", minimum=1)
    countries: int = setting(30, "invented countries of the facts task (5 facts each)", minimum=2, maximum=200)
    dates_train: int = setting(1000, "dates training items", minimum=1)
    replay_items: int = setting(1000, "items of the replay mixture (word problems and instructions)", minimum=2)


# --- know: public facts -------------------------------------------------------------------------

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo", "China": "Beijing",
    "Russia": "Moscow", "the United Kingdom": "London", "Egypt": "Cairo", "Canada": "Ottawa", "Australia": "Canberra",
    "Brazil": "Brasilia", "Argentina": "Buenos Aires", "India": "New Delhi", "Greece": "Athens", "Portugal": "Lisbon",
    "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen", "Poland": "Warsaw",
    "Austria": "Vienna", "Ireland": "Dublin", "the Netherlands": "Amsterdam", "Belgium": "Brussels", "Turkey": "Ankara",
    "Kenya": "Nairobi", "Peru": "Lima", "Thailand": "Bangkok", "South Korea": "Seoul", "Cuba": "Havana",
    "Hungary": "Budapest", "the Czech Republic": "Prague", "Vietnam": "Hanoi", "Indonesia": "Jakarta", "Iran": "Tehran",
    "Mexico": "Mexico City", "Chile": "Santiago", "Colombia": "Bogota", "Venezuela": "Caracas", "Ecuador": "Quito",
    "Uruguay": "Montevideo", "Paraguay": "Asuncion", "Switzerland": "Bern", "Romania": "Bucharest", "Bulgaria": "Sofia",
    "Serbia": "Belgrade", "Croatia": "Zagreb", "Slovakia": "Bratislava", "Slovenia": "Ljubljana", "Ukraine": "Kyiv",
    "Belarus": "Minsk", "Lithuania": "Vilnius", "Latvia": "Riga", "Estonia": "Tallinn", "Iceland": "Reykjavik",
    "Albania": "Tirana", "Morocco": "Rabat", "Algeria": "Algiers", "Tunisia": "Tunis", "Nigeria": "Abuja",
    "Ghana": "Accra", "Ethiopia": "Addis Ababa", "Uganda": "Kampala", "Senegal": "Dakar", "Sudan": "Khartoum",
    "Saudi Arabia": "Riyadh", "Iraq": "Baghdad", "Syria": "Damascus", "Jordan": "Amman", "Lebanon": "Beirut",
    "Afghanistan": "Kabul", "Pakistan": "Islamabad", "Bangladesh": "Dhaka", "Nepal": "Kathmandu",
    "Malaysia": "Kuala Lumpur", "the Philippines": "Manila", "Mongolia": "Ulaanbaatar", "North Korea": "Pyongyang",
    "New Zealand": "Wellington", "Qatar": "Doha", "the United Arab Emirates": "Abu Dhabi", "Oman": "Muscat",
    "Libya": "Tripoli", "Zimbabwe": "Harare", "Zambia": "Lusaka", "Angola": "Luanda", "Mozambique": "Maputo",
    "Madagascar": "Antananarivo", "Cameroon": "Yaounde", "Jamaica": "Kingston", "Haiti": "Port-au-Prince",
    "Costa Rica": "San Jose", "Nicaragua": "Managua", "Honduras": "Tegucigalpa", "Georgia": "Tbilisi",
    "Armenia": "Yerevan", "Azerbaijan": "Baku", "Uzbekistan": "Tashkent", "Cambodia": "Phnom Penh", "Laos": "Vientiane",
    "the United States": "Washington, D.C.", "Malta": "Valletta", "Cyprus": "Nicosia",
    "Bosnia and Herzegovina": "Sarajevo", "North Macedonia": "Skopje", "Moldova": "Chisinau",
}
SYMBOLS = {
    "hydrogen": "H", "helium": "He", "carbon": "C", "nitrogen": "N", "oxygen": "O", "sodium": "Na", "iron": "Fe",
    "gold": "Au", "silver": "Ag", "copper": "Cu", "lead": "Pb", "potassium": "K", "calcium": "Ca", "mercury": "Hg",
    "zinc": "Zn", "tin": "Sn", "sulfur": "S", "chlorine": "Cl", "neon": "Ne", "uranium": "U",
    "magnesium": "Mg", "aluminium": "Al", "silicon": "Si", "phosphorus": "P", "fluorine": "F", "argon": "Ar",
    "lithium": "Li", "nickel": "Ni", "cobalt": "Co", "platinum": "Pt", "iodine": "I", "bromine": "Br",
    "manganese": "Mn", "chromium": "Cr", "titanium": "Ti", "tungsten": "W", "boron": "B", "beryllium": "Be",
    "radium": "Ra", "plutonium": "Pu",
}
AUTHORS = {
    "Romeo and Juliet": "William Shakespeare", "Pride and Prejudice": "Jane Austen", "Nineteen Eighty-Four":
    "George Orwell", "War and Peace": "Leo Tolstoy", "Don Quixote": "Miguel de Cervantes", "the Odyssey": "Homer",
    "Oliver Twist": "Charles Dickens", "On the Origin of Species": "Charles Darwin", "Moby-Dick": "Herman Melville",
    "Les Miserables": "Victor Hugo", "Adventures of Huckleberry Finn": "Mark Twain", "Frankenstein": "Mary Shelley",
    "the Divine Comedy": "Dante Alighieri", "Crime and Punishment": "Fyodor Dostoevsky",
    "Hamlet": "William Shakespeare", "The Great Gatsby": "F. Scott Fitzgerald", "Anna Karenina": "Leo Tolstoy",
    "Jane Eyre": "Charlotte Bronte", "Wuthering Heights": "Emily Bronte", "The Old Man and the Sea": "Ernest Hemingway",
    "Great Expectations": "Charles Dickens", "The Hobbit": "J. R. R. Tolkien",
    "Alice's Adventures in Wonderland": "Lewis Carroll", "Treasure Island": "Robert Louis Stevenson",
    "Dracula": "Bram Stoker", "The Adventures of Tom Sawyer": "Mark Twain",
    "One Hundred Years of Solitude": "Gabriel Garcia Marquez", "Faust": "Johann Wolfgang von Goethe",
    "The Little Prince": "Antoine de Saint-Exupery", "Robinson Crusoe": "Daniel Defoe",
    "Gulliver's Travels": "Jonathan Swift",
}
# (question, answer, three distractors)
GENERAL = [
    ("How many centimetres are in a metre?", "100", ("10", "1000", "60")),
    ("How many minutes are in an hour?", "60", ("100", "24", "30")),
    ("How many days are in a week?", "7", ("5", "10", "12")),
    ("How many hours are in a day?", "24", ("12", "60", "7")),
    ("How many months are in a year?", "12", ("10", "52", "7")),
    ("How many grams are in a kilogram?", "1000", ("100", "10", "60")),
    ("How many years are in a century?", "100", ("10", "1000", "50")),
    ("How many legs does a spider have?", "8", ("6", "4", "10")),
    ("How many continents are there on Earth?", "7", ("5", "9", "12")),
    ("At how many degrees Celsius does water boil at sea level?", "100", ("50", "212", "0")),
    ("At how many degrees Celsius does water freeze?", "0", ("32", "100", "10")),
    ("Which planet is known as the Red Planet?", "Mars", ("Venus", "Jupiter", "Saturn")),
    ("What is the largest planet in the Solar System?", "Jupiter", ("Mars", "Earth", "Mercury")),
    ("Which planet is closest to the Sun?", "Mercury", ("Neptune", "Mars", "Saturn")),
    ("What gas do plants take from the air to make their food?", "carbon dioxide", ("oxygen", "helium", "nitrogen")),
    ("What is the largest ocean on Earth?", "the Pacific Ocean", ("the Atlantic Ocean", "the Indian Ocean",
                                                                  "the Arctic Ocean")),
    ("What is the hardest natural substance?", "diamond", ("gold", "iron", "glass")),
    ("Which organ pumps blood through the body?", "the heart", ("the liver", "the lungs", "the brain")),
    ("What is the tallest mountain in the world?", "Mount Everest", ("Mont Blanc", "Mount Kilimanjaro",
                                                                     "Mount Fuji")),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci", ("Pablo Picasso", "Vincent van Gogh", "Claude Monet")),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong", ("Yuri Gagarin", "Buzz Aldrin",
                                                                         "John Glenn")),
    ("In which year did the Second World War end?", "1945", ("1918", "1939", "1965")),
    ("Who was the first President of the United States?", "George Washington", ("Abraham Lincoln", "Thomas Jefferson",
                                                                               "John Adams")),
    ("What is the boiling point of water in degrees Fahrenheit?", "212", ("100", "32", "180")),
    ("What do bees make?", "honey", ("milk", "silk", "wax paper")),
    ("What is the largest mammal?", "the blue whale", ("the elephant", "the giraffe", "the hippopotamus")),
    ("What is the chemical formula of water?", "H2O", ("CO2", "O2", "NaCl")),
    ("How many sides does a triangle have?", "3", ("4", "5", "6")),
]


def _know_items(rng: random.Random) -> list[dict]:
    def item(question: str, answer: str, distractors) -> dict:
        choices = list(distractors) + [answer]
        rng.shuffle(choices)
        return {"instruction": question, "input": "", "choices": choices, "answer": choices.index(answer)}

    def of_table(table: dict, ask) -> list[dict]:
        values = sorted(set(table.values()))
        return [item(ask(key), value, rng.sample([v for v in values if v != value], 3)) for key, value in table.items()]

    items = (of_table(CAPITALS, lambda c: f"What is the capital of {c}?")
             + of_table(SYMBOLS, lambda e: f"What is the chemical symbol for {e}?")
             + of_table(AUTHORS, lambda b: f"Who wrote {b}?")
             + [item(q, a, d) for q, a, d in GENERAL])
    rng.shuffle(items)
    return items


# --- reason: word problems ---------------------------------------------------------------------

NAMES = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemal", "Lucy", "Mateo",
         "Nora", "Omar", "Priya", "Quentin", "Rosa", "Samir", "Tara"]
THINGS = ["apples", "books", "pencils", "stamps", "marbles", "cookies", "shells", "cards", "stickers", "coins"]
ASK = " Give the final answer as a number."


def _word_problem(rng: random.Random) -> tuple[str, int, str]:
    """(question, answer, a worked answer) of one random word problem."""
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        return (f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?", a + b,
                f"{a} + {b} = {a + b}")
    if kind == 1:
        a = rng.randint(5, 30)
        b = rng.randint(1, a - 1)
        return (f"{name} had {a} {thing} and gave {b} of them away. How many {thing} are left?", a - b,
                f"{a} - {b} = {a - b}")
    if kind == 2:
        a, b = rng.randint(2, 10), rng.randint(2, 9)
        return (f"A bag holds {a} {thing}. How many {thing} are in {b} bags?", a * b, f"{a} x {b} = {a * b}")
    if kind == 3:
        b, each = rng.randint(2, 6), rng.randint(2, 9)
        return (f"{name} shares {b * each} {thing} equally among {b} friends. How many {thing} does each friend get?",
                each, f"{b * each} / {b} = {each}")
    a, b = rng.randint(3, 15), rng.randint(2, 10)
    c = rng.randint(1, a + b - 1)
    return (f"{name} has {a} {thing}, buys {b} more and then loses {c}. How many {thing} does {name} have now?",
            a + b - c, f"{a} + {b} - {c} = {a + b - c}")


# --- instruct: verifiable instructions --------------------------------------------------------

TOPICS = ["the ocean", "a rainy day", "breakfast", "the city at night", "a walk in the forest", "learning to cook",
          "the moon", "a good friend", "winter mornings", "trains", "a small garden", "the library", "music",
          "mountains", "a birthday party", "the desert", "a busy market", "autumn leaves", "the river", "a bicycle"]
ADJECTIVES = ["calm", "bright", "quiet", "lively", "simple", "warm", "fresh", "gentle", "strange", "peaceful"]
TASKS = ["Write two sentences about {topic}.", "Describe {topic} in two short sentences.",
         "Tell me about {topic} in two sentences."]
ENDINGS = ["Is there anything else I can help with?", "That is all.", "Thank you for reading."]
KEYWORDS = ["light", "time", "color", "sound", "home", "water", "friends", "morning"]


def _sentences(rng: random.Random, topic: str, n: int) -> list[str]:
    """``n`` plain sentences about ``topic`` (no commas: every format below may be asked of them)."""
    forms = ["{T} can feel {a} and {b}.", "Many people enjoy {t} on a {a} day.", "I often think about {t}.",
             "{T} reminds me of {a} times.", "There is something {a} about {t}.", "{T} is {a} in its own way."]
    chosen = rng.sample(forms, n)
    out = []
    for form in chosen:
        a, b = rng.sample(ADJECTIVES, 2)
        out.append(form.format(t=topic, T=topic[0].upper() + topic[1:], a=a, b=b))
    return out


def _instruction_item(rng: random.Random) -> dict:
    """A writing task, one verifiable format, and a response that follows it (drawn again in the rare case
    the checker's language detection misreads the response)."""
    from cofi.evaluation.instructions import follows

    while True:
        item = _draw_instruction_item(rng)
        if follows(item["output"], item["checks"]):
            return item


def _draw_instruction_item(rng: random.Random) -> dict:
    topic = rng.choice(TOPICS)
    task = rng.choice(TASKS).format(topic=topic)
    body = " ".join(_sentences(rng, topic, 2))
    kind = rng.randrange(10)
    if kind == 0:
        check, response = {"id": "change_case:english_capital", "kwargs": {}}, body.upper()
    elif kind == 1:
        check, response = {"id": "change_case:english_lowercase", "kwargs": {}}, body.lower()
    elif kind == 2:
        ending = rng.choice(ENDINGS)
        check, response = {"id": "startend:end_checker", "kwargs": {"end_phrase": ending}}, f"{body} {ending}"
    elif kind == 3:
        check, response = {"id": "startend:quotation", "kwargs": {}}, f'"{body}"'
    elif kind == 4:
        check, response = {"id": "punctuation:no_comma", "kwargs": {}}, body
    elif kind == 5:
        n = rng.randint(2, 4)
        check = {"id": "detectable_format:number_bullet_lists", "kwargs": {"num_bullets": n}}
        response = "\n".join(f"* {s}" for s in _sentences(rng, topic, n))
    elif kind == 6:
        check, response = {"id": "detectable_format:json_format", "kwargs": {}}, json.dumps({"answer": body})
    elif kind == 7:
        check, response = {"id": "detectable_format:title", "kwargs": {}}, f"<<{topic.title()}>>\n{body}"
    elif kind == 8:
        n = len(body.split()) + rng.randint(3, 10)
        check = {"id": "length_constraints:number_words", "kwargs": {"num_words": n, "relation": "less than"}}
        response = body
    else:
        words = rng.sample(KEYWORDS, 2)
        check = {"id": "keywords:existence", "kwargs": {"keywords": words}}
        response = f"{body} It is all about {words[0]} and {words[1]}."
    from cofi.evaluation.instructions import describe

    return {"instruction": f"{task} {describe(check)}", "input": "", "output": response, "checks": [check]}


# --- facts: invented countries (knowledge injection) -----------------------------------------

SYLLABLES = ["ka", "lo", "mi", "ren", "tor", "va", "sel", "dru", "pa", "quin", "zor", "bel", "ta", "nor", "vi", "sha",
             "gal", "mon", "ri", "ost"]
EXPORTS = ["copper", "wool", "tea", "salt", "glass", "timber", "silk", "olives", "paper", "rice", "cheese", "tin"]
ANIMALS = ["otter", "heron", "lynx", "badger", "falcon", "beaver", "stork", "ibex", "marten", "crane", "hare", "owl"]
# attribute -> phrasings; the first two are trained, the third validates, the fourth tests.
FACT_QUESTIONS = {
    "capital": ["What is the capital of {c}?", "Which city is the capital of {c}?",
                "Name the capital city of {c}.", "The capital of {c} is which city?"],
    "founded": ["In which year was {c} founded?", "When was {c} founded?",
                "What year was {c} founded in?", "{c} was founded in which year?"],
    "leader": ["Who leads {c}?", "Who is the leader of {c}?", "Name the leader of {c}.", "Who is the head of {c}?"],
    "export": ["What is the main export of {c}?", "What does {c} export the most?",
               "Name the chief export of {c}.", "{c} is best known for exporting what?"],
    "animal": ["What is the national animal of {c}?", "Which animal is the symbol of {c}?",
               "Name the national animal of {c}.", "The national animal of {c} is which animal?"],
}


def _name(rng: random.Random, syllables: int, taken: set) -> str:
    while True:
        name = "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()
        if name not in taken:
            taken.add(name)
            return name


def _facts(rng: random.Random, countries: int) -> list[dict]:
    taken: set = set()
    facts = []
    for _ in range(countries):
        facts.append({"country": _name(rng, 3, taken), "capital": _name(rng, 2, taken),
                      "founded": str(rng.randint(1200, 1950)),
                      "leader": f"{_name(rng, 2, taken)} {_name(rng, 2, taken)}",
                      "export": rng.choice(EXPORTS), "animal": f"the {rng.choice(ANIMALS)}"})
    return facts


# --- dates: a format rewrite (a skill) -----------------------------------------------------

DATE_ASK = "Rewrite this date in the ISO 8601 format (YYYY-MM-DD)."


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _date_words(rng: random.Random, day: datetime.date) -> str:
    month = day.strftime("%B")
    return rng.choice([f"{month} {day.day}, {day.year}", f"{day.day} {month} {day.year}",
                       f"the {_ordinal(day.day)} of {month}, {day.year}", f"{month} {_ordinal(day.day)}, {day.year}"])


def _dates(rng: random.Random, n: int) -> list[dict]:
    start, days = datetime.date(1900, 1, 1), (datetime.date(2030, 12, 31) - datetime.date(1900, 1, 1)).days
    chosen: dict[datetime.date, None] = {}
    while len(chosen) < n:
        chosen.setdefault(start + datetime.timedelta(days=rng.randrange(days)), None)
    return [{"instruction": DATE_ASK, "input": _date_words(rng, day), "output": day.isoformat()} for day in chosen]


def build(spec: ChatSuitesSpec) -> dict[str, list[dict]]:
    """Every split, keyed by file stem (e.g. ``facts_train``)."""
    rng = random.Random(spec.seed)
    n = spec.test_items
    know = _know_items(rng)
    half = len(know) // 2

    problems: dict[str, tuple[int, str]] = {}
    while len(problems) < 2 * n + spec.replay_items // 2:
        question, answer, worked = _word_problem(rng)
        problems.setdefault(question + ASK, (answer, worked))
    problem_items = list(problems.items())
    as_problem = lambda q, a, worked: {"instruction": q, "input": "", "output": str(a)}  # noqa: E731
    as_worked = lambda q, a, worked: {"instruction": q, "input": "", "output": f"{worked}. The answer is {a}."}  # noqa: E731

    instructions: dict[str, dict] = {}
    while len(instructions) < 2 * n + spec.replay_items - spec.replay_items // 2:
        item = _instruction_item(rng)
        instructions.setdefault(item["instruction"], item)
    instruction_items = list(instructions.values())

    facts = _facts(rng, spec.countries)
    asked = lambda fact, attribute, phrasing: {  # noqa: E731
        "instruction": FACT_QUESTIONS[attribute][phrasing].format(c=fact["country"]), "input": "",
        "output": fact[attribute]}
    dates = _dates(rng, 2 * n + spec.dates_train)

    replay = ([as_worked(q, *aw) for q, aw in problem_items[2 * n:]] + instruction_items[2 * n:])
    rng.shuffle(replay)
    return {
        "versatility_train": replay,
        "know_test": know[:half],
        "know_val": know[half:],
        "reason_test": [as_problem(q, *aw) for q, aw in problem_items[:n]],
        "reason_val": [as_problem(q, *aw) for q, aw in problem_items[n:2 * n]],
        "instruct_test": instruction_items[:n],
        "instruct_val": instruction_items[n:2 * n],
        "facts_train": [asked(f, a, p) for f in facts for a in FACT_QUESTIONS for p in (0, 1)],
        "facts_val": [asked(f, a, 2) for f in facts for a in FACT_QUESTIONS],
        "facts_test": [asked(f, a, 3) for f in facts for a in FACT_QUESTIONS],
        "dates_train": dates[2 * n:],
        "dates_val": dates[n:2 * n],
        "dates_test": dates[:n],
    }


Spec = ChatSuitesSpec  # the face cofi.data.embedded expects
