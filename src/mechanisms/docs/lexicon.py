"""The word lists behind the prose finders (``passive.py``, ``weasel.py``).

Plain data, all lower case. Each list says which question it answers; the rules that use
them are in the finders. Kept by hand: a list is easier to read, test and extend than a
statistical model, and nothing has to be downloaded to use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def trie_pattern(words: Iterable[str]) -> str:
    """A regular expression matching any of ``words``, shaped as a trie ("be(?:ing|en)?").

    Python's engine tries the branches of a flat alternation one by one at every
    position; a trie rejects a position on its first letter, and an expression that
    starts with plain letters lets the engine skip ahead to the next possible first
    letter. A space in a phrase matches any run of whitespace. Case is as given: list
    each case wanted ("is", "Is"), which is much faster than ``re.IGNORECASE``.
    """
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here
    return _emit(trie)


def _emit(node: dict[str, dict]) -> str:
    branches = [
        (r"\s+" if char == " " else re.escape(char)) + _emit(child)
        for char, child in sorted(node.items())
        if char
    ]
    if not branches:
        return ""
    ends_here = "" in node
    if len(branches) == 1 and not ends_here:
        return branches[0]
    return "(?:" + "|".join(branches) + ")" + ("?" if ends_here else "")


def cased(words: Iterable[str]) -> list[str]:
    """Each word as written and with a capital first letter (at a sentence's start)."""
    return [form for word in words for form in dict.fromkeys((word, word[:1].upper() + word[1:]))]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Past participles that do not end in -ed, of verbs that take an object (so they can be
# passive). Intransitive ones (gone, come, fallen, risen, been, become) are left out:
# "is gone" is never a passive. So are forms that are mostly adjectives after "be"
# ("fit", "rid", "beat").
IRREGULAR_PARTICIPLES = _words(
    """
    awoken begun bent beset bet bid bidden bitten bled blown borne born bought bound bred broadcast
    broken brought built burnt burst cast caught chosen clung cost crept cut dealt dived done
    drawn dreamt driven drunk dug dwelt eaten beaten fed felt fled flown flung forbidden fought found
    forecast foregone foreseen forgiven forgotten forsaken frozen gotten given ground grown
    heard held hewn hidden hit hung hurt kept knelt knit known laid leapt learnt led left lent
    let lit lost made meant met misheard mislaid misled misread misspelt mistaken
    misunderstood mown outdone outgrown overcome overdone overheard overpaid overridden overrun
    overseen overshot overtaken overthrown overwritten paid pled proven put quit read rebuilt
    redone remade reread rerun reset resent rethought retaken rewritten rewound ridden rung
    run said sawn seen sent set sewn shaken shaven shed shod shone shorn shot shown shrunk
    sat shut slain slid slit slung smitten sold sought sown sped spelt spent spilt spit split spoilt
    spoken spread sprung spun stolen stood strewn stricken stridden striven struck strung
    stuck stung stunk sung sunk sworn swept swollen swum swung taken taught thought thrown
    thrust told torn trodden underpaid understood undertaken underwritten undone upheld upset
    wed withdrawn withheld withstood woken won worn wound woven written wrung
    """
)

# Words in -ed that are not the participle of a verb: nouns, names, adjectives.
NOT_PARTICIPLES = _words(
    """
    bed red sled shred fred ted ned jed reed ed ahmed mohammed hundred kindred hatred
    infrared seabed testbed hotbed flowerbed riverbed watershed bloodshed embed naked wicked
    sacred beloved rugged ragged crooked jagged wretched dogged talented bearded gifted
    moneyed winged horned hooded jaded
    """
)
# Words in -eed are nouns or present tenses (need, speed, proceed) except these.
EED_PARTICIPLES = _words("agreed freed guaranteed decreed refereed emceed teed kneed")

# Participles of verbs that take no object, so "is expired", "are departed" describe a
# state: never a passive.
INTRANSITIVE = _words(
    """
    happened occurred arrived existed died appeared disappeared vanished emerged departed
    elapsed expired retired deceased lasted remained seemed belonged consisted resulted
    sufficed thrived
    """
)

# Participles that after "be" or "get" name a feeling or a state more often than an action:
# adjectival unless an agent follows ("was surprised by the bill").
STATIVE = _words(
    """
    tired interested excited worried bored pleased concerned confused disappointed satisfied
    scared amazed annoyed frustrated surprised impressed convinced delighted thrilled relieved
    embarrassed overwhelmed puzzled stressed exhausted ashamed terrified frightened shocked
    upset hurt depressed determined committed devoted involved related married divorced
    engaged acquainted accustomed situated experienced skilled complicated sophisticated
    crowded outdated
    """
)

# Participles that after a present tense of "be" describe the result, a state ("the door
# is locked", "the build is broken", "two tasks are left"), while the past tense or a
# perfect usually reports the action ("was locked by", "has been broken").
RESULTATIVE = _words("closed locked broken finished done left stuck filled packed worn")

# After "get": the subject is not acted on ("get started", "got lost", "got married").
GET_IDIOMS = _words(
    """
    started rid used dressed married lost involved tired bored excited acquainted engaged
    divorced drunk stuck done changed
    """
)

# Verbs made with the prefix un- ("unlock"): their participles are passives ("was
# unlocked"); other un- participles are adjectives ("is untested", "was unexpected").
UN_VERBS = _words(
    """
    unlock unblock unload unpack uninstall unset unpin unmount unregister unsubscribe unfreeze
    undo unwrap unmark unhide unassign unlink unarchive unpublish undeploy unfollow unroll
    unbind unplug unzip unwind unseal unban untag unstage unlist unmute unveil uncover unearth
    unleash unravel unfold unify unite unmerge unflag unschedule unsnooze unsilence unload
    unlearn unscrew unbundle uncheck unselect unshare
    """
)
UN_PARTICIPLES = _words("unified united undone unbound unwound")

# Prefixes joined by a hyphen to a verb ("re-deployed", "auto-generated"): the word is the
# verb's participle. Other hyphenated words in -ed are compound adjectives ("one-sided").
VERB_PREFIXES = _words("re pre auto co de mis over under self cross double hand")

# Words after which "'s" is "is" or "has" ("it's deployed"): after a noun it is nearly
# always the possessive ("the team's tired engineers").
PRONOUNS_WITH_IS = _words(
    """
    it that what who he she there here where this everything nothing something someone
    everyone nobody
    """
)

# Words that may stand between the auxiliary and the participle: adverbs (with any word in
# -ly), negation and floating quantifiers ("were all deployed").
INSERTED = _words(
    """
    not n't never also already still just often always usually sometimes then now only even
    soon rarely seldom ever once twice all both each again later first last thus therefore
    however since yet meanwhile instead long little well better best badly hardly almost
    nearly mostly partly fully newly widely wrongly rightly quickly slowly so very too quite
    rather really pretty fairly somewhat increasingly incredibly terribly deeply awfully more
    most less least no longer here there today tomorrow yesterday eventually finally
    automatically manually successfully correctly
    """
)
# An adverb of degree right before the participle makes it an adjective ("very tired").
DEGREE = _words(
    """
    very so too quite rather really pretty fairly somewhat increasingly incredibly terribly
    deeply awfully more most less least
    """
)

# Words after "be used to": a noun phrase or an -ing form means "accustomed to" (not
# passive); a bare verb means the thing serves that purpose ("is used to gate").
DETERMINERS = _words(
    """
    a an the this that these those it them him her us me you my our your their his its such
    every each some any no
    """
)
# Verbs after "be bound to" that make it "certain to" ("is bound to fail").
BOUND_TO_VERBS = _words(
    """
    be fail happen break change occur go come get make run cause lose win need see hit
    """
)

# In a question, the participle comes after the subject ("Was the bug fixed?"); it is
# the participle and not an adjective before a noun ("the cached value") when one of these,
# or punctuation, follows it.
AFTER_QUESTION_PARTICIPLE = _words(
    """
    by to in on at for from with of into onto about over under through before after during
    since until yet again already back up down out off away anywhere anyway correctly
    properly when if while because so and or but then now here there today yesterday
    """
)
QUESTION_WORDS = _words("who whom whose what which when where why how")

# After "clearly" or "fairly": words that show it is a manner adverb ending its phrase
# ("share fairly between", "state clearly what"), not a weasel ("clearly better").
MANNER_FOLLOW = _words(
    """
    between among across to and or so when if for with in on at by what that how why where
    whether
    """
)
# Participles that "clearly" describes the manner of: how a thing is set out for a reader
# ("clearly labelled"). Before any other ("is clearly done", "is clearly caused by") it
# claims the thing is evident: a weasel.
SET_OUT = _words(
    """
    labelled labeled marked written stated defined explained described documented shown
    displayed separated worded printed structured named identified indicated signposted
    expressed formatted presented laid spelled spelt
    """
)

# "very" is an adjective, not a degree word, after "the"/"this"... and before one of
# these ("the very first deploy", "that very page").
VERY_AS_ADJECTIVE_BEFORE = _words(
    """
    first last same best least end beginning start moment thing idea top bottom heart edge
    core page day reason point fact word nature essence definition centre center middle
    """
)
POINTING = _words("the this that these those its their his her our my your")
