"""A shard set's identity: its name (`original`, `q4`, `jpeg30`), its parse, and what it is.

The one place a set is named or told apart, from prep's config to the report's tables. A set
is the original images, the learned codec's images at a quality (`q<Q>`: CompressAI's
bmshj2018-hyperprior, or the project's own codecs of that architecture), or a classical
codec's at a Pillow quality (`<codec><P>`: jpeg30, webp50), with its file's bytes and the
decoded image and no latent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ORIGINAL = "original"  # the original set's name, and its kind
LEARNED = "learned"  # the learned codec, and the kind of its sets
CLASSICAL = {"jpeg": "JPEG", "webp": "WEBP"}  # a classical codec -> Pillow's format name
CODECS = (LEARNED, *CLASSICAL)
KINDS = (ORIGINAL, LEARNED, "classical")
_PREFIXES = {"q": LEARNED, **{codec: codec for codec in CLASSICAL}}


@dataclass(frozen=True)
class SetId:
    """A set: `SetId()` the original images, `SetId(quality=4)` q4, `SetId("jpeg", 30)` jpeg30.
    Ordered as the report lists sets: the original, the learned qualities, then each classical
    codec's."""

    codec: str = LEARNED
    quality: int | None = None

    def __post_init__(self):
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r} is not one of {', '.join(CODECS)}")
        if self.quality is None and self.codec != LEARNED:
            raise ValueError(f"a {self.codec} set needs its Pillow quality ({self.codec}<P>)")
        if self.quality is not None and type(self.quality) is not int:  # each codec checks
            raise ValueError(f"quality {self.quality!r}: give a whole number")  # its range

    @classmethod
    def of(cls, quality: int | None, codec: str = LEARNED) -> SetId:
        """The set of a quality (None: the original) and a codec, as the command lines give
        them (--quality Q --codec C)."""
        return cls(codec, quality)

    @classmethod
    def parse(cls, name: str) -> SetId:
        """The set a name names; a ValueError names the forms that exist."""
        if name == ORIGINAL:
            return cls()
        match = re.fullmatch(r"([a-z]+)(\d+)", name)
        if not match or match.group(1) not in _PREFIXES or int(match.group(2)) < 1:
            raise ValueError(f"{name!r} is not a set name: {ORIGINAL}, q<Q> (learned codec), "
                             + ", ".join(f"{c}<P>" for c in CLASSICAL) + " (Pillow quality P)")
        return cls(_PREFIXES[match.group(1)], int(match.group(2)))

    @property
    def name(self) -> str:
        if self.quality is None:
            return ORIGINAL
        return f"q{self.quality}" if self.codec == LEARNED else f"{self.codec}{self.quality}"

    @property
    def kind(self) -> str:
        """original, learned or classical."""
        return ORIGINAL if self.quality is None else LEARNED if self.codec == LEARNED \
            else KINDS[2]

    @property
    def coded(self) -> bool:
        return self.quality is not None

    @property
    def learned(self) -> bool:
        """The learned codec's set: it holds y_hat and sigma_hat."""
        return self.kind == LEARNED

    @property
    def classical(self) -> bool:
        return self.kind == KINDS[2]

    def sort_key(self) -> tuple:
        return KINDS.index(self.kind), CODECS.index(self.codec), self.quality or 0

    def __lt__(self, other: SetId) -> bool:
        return self.sort_key() < other.sort_key()

    def __str__(self) -> str:
        return self.name
