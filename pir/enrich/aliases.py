"""Aliases of object names ("lamp" -> "luminaire", "lighting fixture") from WordNet and a curated table.

WordNet 3.0 comes from Debian's ``wordnet-base`` (``/usr/share/wordnet``) and is read with nltk's
``WordNetCorpusReader``. Debian ships no ``lexnames`` file and nltk only reads private files under registered roots,
so the dictionary files are copied once per process into a private temporary folder (removed at exit), a
``lexnames`` file is written there, and the folder is registered in ``nltk.data.path``. Only the most frequent
physical-object sense (``noun.artifact``) of a word is used, a synonym is kept only when that sense is one of the
synonym's own two main senses, and a small blocklist removes odd senses (electric chair, toilet for stool, ...).
Without WordNet a curated table still gives aliases for common patent objects (a warning is logged once).
"""

from __future__ import annotations

import atexit
import functools
import itertools
import logging
import os
import re
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from pir.enrich.classes import title_for_class_name

logger = logging.getLogger(__name__)

#: Bump when :data:`CURATED_ALIASES` or the alias rules change (part of the enrichment cache key).
ALIAS_TABLE_VERSION = "1"

#: Debian's wordnet-base location.
DEFAULT_WORDNET_ROOT = Path("/usr/share/wordnet")

#: The standard WordNet lexicographer file list (``lexnames``); nltk needs it, Debian does not ship it.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()

_WORDNET_FILES = (
    "lexnames cntlist.rev index.adj index.adv index.noun index.verb data.adj data.adv data.noun data.verb "
    "adj.exc adv.exc noun.exc verb.exc"
).split()

#: Senses that are never an object's alias even when they are artifacts.
BLOCKED_SYNSETS = frozenset(
    {
        "electric_chair.n.01",
        "toilet.n.02",
        "squash_racket.n.01",
        "rack.n.04",
        "detonator.n.01",
        "pill.n.02",
        "diaper.n.01",
        "magazine.n.04",
        "cricket_bat.n.01",
    }
)
#: Lemmas dropped wherever they come from (vulgar, slang or misleading for drawings).
BLOCKED_LEMMAS = frozenset({"crapper", "throne", "john", "potty", "hot seat", "death chair", "commode", "bm"})
#: Broader terms too generic to help ("a kind of artifact").
GENERIC_HYPERNYMS = frozenset(
    {
        "artifact",
        "artefact",
        "instrumentality",
        "instrumentation",
        "device",
        "object",
        "physical object",
        "whole",
        "unit",
        "structure",
        "construction",
        "container",
        "covering",
        "equipment",
        "implement",
        "system",
        "commodity",
        "article",
        "material",
        "part",
        "portion",
        "component",
        "element",
        "appendage",
        "surface",
        "support",
        "protective covering",
        "slab",
        "top",
        "machine",
        "mechanism",
        "mechanical device",
        "simple machine",
    }
)
#: Head words that say little about the object ("irrigation coupling assembly" is looked up as "irrigation coupling").
WEAK_HEADS = frozenset(
    {"assembly", "device", "system", "apparatus", "unit", "member", "portion", "part", "element", "structure", "set"}
    | {"kit", "segment", "thereof", "article", "arrangement", "product"}
)

#: Curated aliases of common design-patent objects; used with WordNet and as the fallback without it.
CURATED_ALIASES: dict[str, tuple[str, ...]] = {
    "lamp": ("light", "lighting fixture", "luminaire", "light fixture"),
    "light": ("lamp", "lighting fixture", "luminaire", "light source"),
    "lighting fixture": ("light fixture", "luminaire", "lamp", "light"),
    "luminaire": ("lighting fixture", "light fixture", "lamp"),
    "string light": ("light string", "string of lights", "fairy lights", "decorative lights"),
    "stage light": ("spotlight", "stage lamp", "stage lighting fixture", "luminaire"),
    "flashlight": ("torch", "hand lamp", "electric torch"),
    "lantern": ("lamp", "hand lamp"),
    "chandelier": ("pendant light", "hanging lamp", "ceiling light"),
    "chair": ("seat", "seating furniture"),
    "stool": ("seat", "backless seat"),
    "sofa": ("couch", "settee", "seating furniture"),
    "table": ("desk", "tabletop furniture"),
    "bed": ("bedstead", "sleeping furniture"),
    "cabinet": ("cupboard", "storage furniture"),
    "shelf": ("shelving", "rack", "storage shelf"),
    "bicycle": ("bike", "pedal cycle", "cycle"),
    "motorcycle": ("motorbike", "motorcycle", "bike"),
    "scooter": ("kick scooter", "push scooter"),
    "vehicle": ("car", "automobile", "motor vehicle"),
    "car": ("automobile", "motorcar", "motor vehicle"),
    "automobile": ("car", "motorcar", "motor vehicle"),
    "truck": ("lorry", "motor truck"),
    "wheel": ("rim", "road wheel", "vehicle wheel", "alloy wheel"),
    "tire": ("tyre", "pneumatic tire", "tread"),
    "front fascia": ("bumper cover", "front bumper", "bumper fascia", "front end"),
    "lower fascia": ("lower bumper cover", "front valance", "bumper fascia"),
    "fascia": ("bumper cover", "bumper fascia", "trim panel"),
    "wrench": ("spanner", "hand tool"),
    "screwdriver": ("driver", "hand tool"),
    "hammer": ("mallet", "hand tool"),
    "pliers": ("pincers", "hand tool"),
    "knife": ("blade", "cutter"),
    "scissors": ("shears", "cutting tool"),
    "handle": ("grip", "handgrip", "haft", "helve"),
    "tool handle": ("handle", "grip", "handgrip", "haft"),
    "knob": ("handle", "grip", "pull"),
    "hinge": ("flexible joint", "pivot", "butt hinge"),
    "buckle": ("clasp", "fastener"),
    "belt buckle": ("buckle", "belt clasp", "belt fastener"),
    "display screen": ("screen", "display", "monitor", "display panel"),
    "display": ("screen", "monitor", "display panel"),
    "screen": ("display", "monitor", "display screen"),
    "monitor": ("display", "screen", "computer monitor"),
    "outdoor display": ("digital signage", "display kiosk", "signage display", "display screen"),
    "graphical user interface": ("GUI", "user interface", "screen layout"),
    "user interface": ("UI", "GUI", "screen layout"),
    "icon": ("symbol", "pictogram", "graphic symbol"),
    "electronic device": ("electronic apparatus", "gadget", "electronic equipment"),
    "computing device": ("computer", "computing machine", "data processor"),
    "computer": ("computing machine", "computing device", "data processor", "PC"),
    "tablet computer": ("tablet", "tablet PC", "slate computer", "portable computer"),
    "laptop": ("notebook computer", "laptop computer", "portable computer"),
    "keyboard": ("keypad", "computer keyboard", "key input device"),
    "mouse": ("computer mouse", "pointing device"),
    "phone": ("telephone", "handset", "mobile phone"),
    "mobile phone": ("cell phone", "smartphone", "handset"),
    "smartphone": ("mobile phone", "cell phone", "handset"),
    "microphone": ("mic", "mike", "sound transducer"),
    "speaker": ("loudspeaker", "sound box"),
    "loudspeaker": ("speaker", "sound box"),
    "headphones": ("earphones", "headset", "headphone"),
    "earphone": ("earbud", "earpiece", "headphone"),
    "camera": ("photographic camera", "imaging device"),
    "television": ("TV", "television set", "TV set"),
    "charger": ("charging device", "power adapter"),
    "cable": ("cord", "wire", "lead"),
    "plug": ("connector", "electrical plug", "plug connector"),
    "connector": ("electrical connector", "coupler", "plug"),
    "connector terminal": ("electrical terminal", "terminal", "electrical contact", "connector"),
    "battery": ("cell", "battery pack", "accumulator"),
    "heat dissipating device": ("heat sink", "heatsink", "cooler", "heat dissipator"),
    "heat sink": ("heatsink", "heat dissipator", "cooler"),
    "fan": ("ventilator", "blower", "electric fan", "air circulator"),
    "mounting system": ("mount", "mounting bracket", "mounting assembly"),
    "attendance machine": ("time clock", "time recorder", "attendance recorder", "punch clock"),
    "clock": ("timepiece", "timekeeper"),
    "watch": ("wristwatch", "timepiece"),
    "garment": ("clothing", "apparel", "article of clothing", "clothes"),
    "garment top": ("top", "blouse", "shirt", "upper garment"),
    "shirt": ("top", "tee", "upper garment"),
    "jacket": ("coat", "outerwear"),
    "pants": ("trousers", "slacks"),
    "dress": ("frock", "gown"),
    "hat": ("cap", "headwear", "headgear"),
    "helmet": ("protective headgear", "hard hat", "headgear"),
    "glove": ("mitt", "handwear"),
    "shoe": ("footwear", "sneaker", "athletic shoe"),
    "boot": ("footwear", "shoe"),
    "sandal": ("footwear", "open shoe"),
    "midsole": ("shoe sole", "sole", "sole unit", "footwear sole"),
    "sole": ("shoe sole", "outsole", "footwear sole"),
    "fabric": ("textile", "cloth", "textile fabric", "material"),
    "napkin": ("serviette", "table napkin", "paper napkin"),
    "towel": ("cloth", "hand towel"),
    "bag": ("pouch", "sack", "carrier"),
    "handbag": ("purse", "bag", "pocketbook"),
    "backpack": ("rucksack", "knapsack", "daypack"),
    "bottle": ("flask", "vessel", "container"),
    "dispenser bottle": ("dispenser", "dispensing bottle", "squeeze bottle", "pump bottle"),
    "dispenser": ("dispensing device", "dispensing container"),
    "container": ("receptacle", "vessel", "box"),
    "box": ("case", "carton", "container"),
    "jar": ("pot", "container", "vessel"),
    "cup": ("mug", "beaker", "drinking vessel"),
    "mug": ("cup", "drinking vessel"),
    "lid": ("cover", "cap", "closure"),
    "cap": ("cover", "lid", "closure"),
    "fastener cap": ("screw cap", "bolt cover", "fastener cover", "cap"),
    "spoon": ("teaspoon", "tablespoon", "cutlery", "utensil"),
    "fork": ("cutlery", "table fork", "utensil"),
    "bowl": ("dish", "basin"),
    "razor": ("shaver", "safety razor", "shaving razor"),
    "razor cartridge": ("razor blade cartridge", "shaving cartridge", "razor head", "blade unit"),
    "blade cartridge": ("razor cartridge", "razor blade cartridge", "shaving cartridge", "blade unit"),
    "toothbrush": ("tooth brush", "dental brush"),
    "brush": ("bristle brush", "hairbrush"),
    "comb": ("hair comb",),
    "hair dryer": ("blow dryer", "hairdryer", "blow-dryer"),
    "dental abutment": ("implant abutment", "abutment", "dental implant component"),
    "syringe": ("injector", "hypodermic syringe"),
    "wheelchair": ("invalid chair", "mobility chair"),
    "coupling": ("coupler", "pipe coupling", "fitting", "connector"),
    "filter": ("strainer", "filter element", "filter cartridge"),
    "pre-filter": ("prefilter", "filter", "strainer", "filter element"),
    "faucet": ("tap", "spigot", "water faucet"),
    "sink": ("basin", "washbasin", "wash basin"),
    "toilet": ("lavatory", "WC", "water closet"),
    "shower head": ("showerhead", "shower rose", "shower nozzle"),
    "nozzle": ("spout", "jet"),
    "valve": ("stopcock", "cock"),
    "hose": ("hosepipe", "flexible tube"),
    "pipe": ("tube", "conduit", "pipework"),
    "housing": ("casing", "enclosure", "case", "shell"),
    "game piece": ("playing piece", "game token", "counter"),
    "bat": ("baseball bat", "softball bat", "sports bat"),
    "golf club": ("club", "golf iron", "golf driver"),
    "golf club head": ("clubhead", "club head", "golf club"),
    "racket": ("racquet", "bat"),
    "ball": ("sports ball", "sphere"),
    "toy": ("plaything", "toy figure"),
    "tent": ("shelter", "camping tent"),
    "umbrella": ("parasol", "brolly", "sunshade"),
    "sunglasses": ("shades", "dark glasses", "eyewear"),
    "eyeglasses": ("glasses", "spectacles", "eyewear"),
    "ring": ("finger ring", "band"),
    "necklace": ("chain", "pendant"),
    "earring": ("ear stud", "ear ornament"),
    "vase": ("flower vase", "urn"),
    "planter": ("flower pot", "plant pot", "jardiniere"),
    "candle holder": ("candlestick", "candleholder"),
    "drone": ("unmanned aerial vehicle", "UAV", "quadcopter"),
    "robot": ("automaton", "robotic device"),
    "vacuum cleaner": ("vacuum", "hoover", "suction cleaner"),
    "blender": ("mixer", "liquidizer", "food processor"),
    "coffee maker": ("coffee machine", "coffeemaker", "espresso machine"),
    "kettle": ("tea kettle", "water boiler"),
    "refrigerator": ("fridge", "icebox"),
    "stroller": ("pram", "pushchair", "baby carriage"),
    "leash": ("lead", "dog leash"),
}

_NON_WORD = re.compile(r"[^a-z0-9'\- ]+")
_SPACES = re.compile(r"\s+")
_CONJUNCTIONS = re.compile(r"\s+(?:and|or|&)\s+")
_STOPWORDS = frozenset("a an the and or of for with on in to by at from".split())


def normalize_name(name: str) -> str:
    """Lower-case, underscores and odd characters to spaces, single spaces."""
    return _SPACES.sub(" ", _NON_WORD.sub(" ", name.replace("_", " ").lower())).strip()


def _naive_singular(word: str) -> str:
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "ics")):
        return word[:-1]
    return word


_NEGATION = re.compile(r"\b(?:without|lacking|not|no|except)\b")


class AliasLexicon:
    """Aliases of object names from an optional WordNet reader plus :data:`CURATED_ALIASES`."""

    def __init__(self, wordnet: Any | None) -> None:
        self.wordnet = wordnet
        self._cache: dict[str, tuple[str, ...]] = {}
        # nltk's WordNet reader seeks and reads shared file handles: one caller at a time.
        self._lock = threading.RLock()

    @property
    def has_wordnet(self) -> bool:
        return self.wordnet is not None

    def singular(self, phrase: str) -> str:
        """Singular of the phrase's last word (``"game pieces"`` -> ``"game piece"``)."""
        words = phrase.split()
        if not words:
            return phrase
        last = words[-1]
        base = None
        if self.wordnet is not None:
            with self._lock:
                base = self.wordnet.morphy(last, "n")
        words[-1] = base or _naive_singular(last)
        return " ".join(words)

    def aliases(self, name: str, max_aliases: int = 8) -> list[str]:
        """Aliases of ``name``, best first, without ``name`` itself; see :func:`class_aliases`."""
        key = normalize_name(name)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = tuple(self._compute(key))
            return list(self._cache[key][:max_aliases])

    def gloss(self, name: str) -> str | None:
        """What the object is (for): WordNet's definition of the main ``noun.artifact`` sense of ``name`` or of its
        head phrase (``"desk lamp"`` -> the gloss of "desk lamp", ``"lamp shade holder"`` -> of "holder"); None
        without WordNet or when no sense is an object."""
        if self.wordnet is None:
            return None
        words = self.singular(normalize_name(name)).split()
        while len(words) > 1 and words[-1] in WEAK_HEADS:
            words = words[:-1]
        with self._lock:
            for i in range(len(words)):
                senses = self._wn_senses(" ".join(words[i:]))
                sense = next(
                    (s for s in senses[:3] if s.lexname() == "noun.artifact" and s.name() not in BLOCKED_SYNSETS),
                    None,
                )
                if sense is not None:
                    # what it is, not what it lacks: "a straight-backed chair without arms" -> "a straight-backed
                    # chair" (words cannot carry a negation: "arms" would match "chair with arms")
                    gloss = _NEGATION.split(str(sense.definition()), maxsplit=1)[0].strip(" ,;")
                    return gloss or None
        return None

    # -- internals -------------------------------------------------------------------------------------------------
    def _compute(self, name: str) -> list[str]:
        if not name:
            return []
        title = title_for_class_name(name)
        if title is not None:  # a class code: its title (and the parts of a list title) are its aliases
            parts = [p.strip() for p in re.split(r",|;| and ", title.lower()) if p.strip()]
            return _dedupe_aliases([title.lower(), *(parts if len(parts) > 1 else [])], exclude={name})
        parts = [p for p in _CONJUNCTIONS.split(name) if p]
        if len(parts) > 1:  # "game housing and game pieces": each part and its aliases
            per_part = [[p, *self._compute_one(p)] for p in parts]
            out = [a for group in itertools.zip_longest(*per_part) for a in group if a]
        else:
            out = self._compute_one(name)
        return _dedupe_aliases(out, exclude={name, self.singular(name)})

    def _compute_one(self, name: str) -> list[str]:
        single = self.singular(name)
        words = single.split()
        # Strip weak heads for the look-up ("irrigation coupling assembly" -> "irrigation coupling").
        while len(words) > 1 and words[-1] in WEAK_HEADS:
            words = words[:-1]
        # 1. curated entries and WordNet senses of the whole name.
        out: list[str] = [*CURATED_ALIASES.get(name, ()), *CURATED_ALIASES.get(single, ())]
        out.extend(self._wordnet_aliases(single, hypernyms=True))
        known_compound = len(words) > 1 and self._wn_senses(single)
        # 2. head phrases, longest first: each is a broader term ("a women's garment top is a garment top"), with
        #    its curated aliases and, when unambiguous, its WordNet synonyms.
        for i in range(len(words)):
            phrase = " ".join(words[i:])
            if phrase == single or not self._is_object_phrase(phrase):
                continue
            out.append(phrase)
            if known_compound and not self._wn_isa(single, phrase):
                continue  # a "steering wheel" is a wheel, but not a road wheel
            out.extend(CURATED_ALIASES.get(phrase, ()))
            out.extend(self._wordnet_aliases(phrase, hypernyms=i == 0, strict=i > 0))
        return out

    def _wn_senses(self, phrase: str) -> list[Any]:
        return self.wordnet.synsets(phrase.replace(" ", "_"), pos="n") if self.wordnet is not None else []

    def _wn_isa(self, phrase: str, broader: str, depth: int = 3) -> bool:
        """True when WordNet's main sense of ``phrase`` has ``broader`` among its hypernyms (``depth`` levels)."""
        senses = self._wn_senses(phrase)[:1]
        target = broader.replace(" ", "_")
        for _ in range(depth):
            senses = [h for s in senses for h in s.hypernyms()]
            if any(target in s.lemma_names() for s in senses):
                return True
        return False

    def _is_object_phrase(self, phrase: str) -> bool:
        """True when a head phrase names a thing: curated, or its last word's main noun senses are objects."""
        if phrase in CURATED_ALIASES:
            return True
        words = phrase.split()
        if not words or words[0] in _STOPWORDS or words[-1] in WEAK_HEADS:
            return False
        if words[-1] in CURATED_ALIASES:
            return True
        if self.wordnet is None:
            return False
        senses = self.wordnet.synsets(words[-1], pos="n")[:2]
        return any(s.lexname() in ("noun.artifact", "noun.object") for s in senses)

    def _wordnet_aliases(self, phrase: str, *, hypernyms: bool, strict: bool = False) -> list[str]:
        wn = self.wordnet
        if wn is None:
            return []
        lemma = phrase.replace(" ", "_")
        synsets = wn.synsets(lemma, pos="n")
        if not synsets:
            return []
        if strict:  # head of a compound: only when its most frequent sense is an object and it has few senses
            if synsets[0].lexname() != "noun.artifact" or len(synsets) > 3:
                return []
        sense = next(
            (s for s in synsets if s.lexname() == "noun.artifact" and s.name() not in BLOCKED_SYNSETS),
            None,
        )
        if sense is None:
            return []
        out: list[str] = []
        for other in sense.lemma_names():
            if other.lower() == lemma.lower():
                continue
            # Keep a synonym only when this sense is one of its own two main senses ("bike" yes, "wheel" no).
            if sense in wn.synsets(other, pos="n")[:2]:
                out.append(other.replace("_", " "))
        if hypernyms:
            for hyper in sense.hypernyms()[:1]:
                out.extend(h.replace("_", " ") for h in hyper.lemma_names()[:2])
        return out


def _dedupe_aliases(candidates: list[str], exclude: set[str]) -> list[str]:
    seen = {normalize_name(e) for e in exclude}
    seen |= {_naive_singular(s) for s in seen}
    out: list[str] = []
    for cand in candidates:
        norm = normalize_name(cand)
        if (
            not norm
            or norm in seen
            or _naive_singular(norm) in seen
            or norm in BLOCKED_LEMMAS
            or norm in GENERIC_HYPERNYMS
        ):
            continue
        seen.add(norm)
        out.append(cand.strip())
    return out


def _stage_wordnet(root: Path) -> Path:
    """Private copy of the WordNet files plus a ``lexnames`` file (nltk refuses symlinks out of its root)."""
    stage = Path(tempfile.mkdtemp(prefix="pir-wordnet-"))
    atexit.register(shutil.rmtree, stage, True)
    for name in _WORDNET_FILES:
        src = root / name
        if src.is_file():
            shutil.copyfile(src, stage / name)
    if not (stage / "lexnames").is_file():
        pos_codes = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
        lines = [f"{i:02d}\t{lex}\t{pos_codes[lex.split('.')[0]]}\n" for i, lex in enumerate(LEXNAMES)]
        (stage / "lexnames").write_text("".join(lines), encoding="ascii")
    for path in stage.iterdir():
        os.chmod(path, 0o644)
    os.chmod(stage, 0o700)
    return stage


def lexicon_signature(wordnet_root: Path | None = None) -> str:
    """What the aliases come from, for cache keys, without loading anything: ``curated-v1+wordnet`` or
    ``curated-v1``."""
    root = Path(wordnet_root) if wordnet_root is not None else DEFAULT_WORDNET_ROOT
    has_wordnet = (root / "data.noun").is_file() and (root / "index.noun").is_file()
    return f"curated-v{ALIAS_TABLE_VERSION}" + ("+wordnet" if has_wordnet else "")


def load_lexicon(wordnet_root: Path | None = None) -> AliasLexicon:
    """The alias lexicon for a WordNet folder (default ``/usr/share/wordnet``), loaded once per process.

    Falls back to the curated table alone, with one warning, when WordNet is absent or unreadable.
    """
    root = Path(wordnet_root).resolve() if wordnet_root is not None else DEFAULT_WORDNET_ROOT
    # keyed by process id too: a forked worker (Celery prefork) must not share the parent's open WordNet files,
    # whose file offsets would be shared between the processes
    return _load_lexicon(root, os.getpid())


@functools.cache
def _load_lexicon(root: Path, pid: int) -> AliasLexicon:
    if not (root / "data.noun").is_file() or not (root / "index.noun").is_file():
        logger.warning("WordNet not found at %s; using the built-in alias table only (apt install wordnet-base)", root)
        return AliasLexicon(None)
    try:
        import nltk  # lazy: start-up (nltk)
        from nltk.corpus.reader.wordnet import WordNetCorpusReader  # lazy: start-up (nltk)

        class _LocalWordNet(WordNetCorpusReader):
            def map_wn(self, version: str = "wordnet") -> None:  # no OMW mapping (it wants corpora/wordnet)
                return None

        stage = _stage_wordnet(root)
        if str(stage) not in nltk.data.path:
            nltk.data.path.append(str(stage))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = _LocalWordNet(str(stage), None)
    except Exception as exc:  # noqa: BLE001 - any failure means "no WordNet", never a crash
        logger.warning("WordNet at %s could not be read (%s); using the built-in alias table only", root, exc)
        return AliasLexicon(None)
    return AliasLexicon(reader)


def class_aliases(name: str, *, max_aliases: int = 8, wordnet_root: Path | None = None) -> list[str]:
    """Aliases of an object or class name, best first, for class prototypes and descriptions.

    Curated aliases come first, then WordNet synonyms of the name's main ``noun.artifact`` sense and its broader
    term, then the head phrases of a compound name (a "shaving blade cartridge" is a "blade cartridge"). A class
    code gives its title (``"D26"`` -> ``["lighting"]``).

    Example:
        >>> class_aliases("wrench")[:1]
        ['spanner']
    """
    return load_lexicon(wordnet_root).aliases(name, max_aliases)
