"""Short sentences per language for synthetic speech (written for this project).

Sentences mix bilabials, rounded and spread vowels and pauses, so the lips show every
viseme. Keys are espeak-ng voice names.
"""

SENTENCES = {
    "en": (
        "Hello there, how are you today?",
        "Please pass me the blue cup on the table.",
        "We walked along the river until the sun went down.",
        "My brother bought five boxes of apples.",
        "Would you like to see the moon tonight?",
        "The weather is warm, but the wind is cool.",
        "Maybe we should meet again next week.",
        "Open the window, and let the fresh air in.",
        "Bob paints pictures of big purple boats.",
        "She sells fruit and flowers at the market.",
    ),
    "de": (
        "Guten Morgen, wie geht es dir heute?",
        "Bitte gib mir das Buch auf dem Tisch.",
        "Wir gehen morgen zusammen in den Park.",
        "Das Wetter ist schön, aber ein bisschen kühl.",
        "Mein Bruder mag Musik und Bücher.",
    ),
    "fr": (
        "Bonjour, comment allez-vous aujourd'hui?",
        "Passe-moi le pain et le beurre, s'il te plaît.",
        "Nous marchons le long de la rivière.",
        "Le soleil brille sur la mer bleue.",
        "Ma mère boit du café chaque matin.",
    ),
    "es": (
        "Hola, ¿cómo estás hoy?",
        "Por favor, pásame el vaso de agua.",
        "Mañana vamos a la playa con mis primos.",
        "El perro blanco duerme bajo la mesa.",
        "Me gusta mucho la música popular.",
    ),
    "it": (
        "Buongiorno, come stai oggi?",
        "Per favore, passami il piatto di pasta.",
        "Domani andiamo al mare con la barca.",
        "Mia madre prepara una buona pizza.",
    ),
}


def sentences_for(language: str) -> tuple[str, ...]:
    """Sentences for ``language`` (an espeak voice name); English for voices we have none of
    (espeak still pronounces them with the requested voice)."""
    base = language.split("-")[0]
    return SENTENCES.get(language, SENTENCES.get(base, SENTENCES["en"]))
