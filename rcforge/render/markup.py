"""Text from annotations is data, never a format's markup.

A name, caption, question or answer may hold what a coordinate format or its model family uses as markup or
special tokens: ``</ref>``, ``<|im_end|>``, ``<loc_12>``, ``<patch_index_0001>``, ``<image>``, a bracketed list of
numbers that reads as a Pink box. Printed verbatim, it would tie phrases wrongly, teach a model to emit location
tokens in prose, switch roles inside a Qwen turn, break a JSON answer, or add an image token. Each format
declares its reserved markup (`rcforge.render.coordinates.Formatter.reserved`: its own mention syntax, its family's
chat and image tokens); `COMMON` holds what every export reserves.

The renderer passes every annotation text through `escape` (recipe ``render.on_markup: escape``, the default):
each reserved token keeps its letters but its brackets become look-alike characters that no tokenizer or
parser treats as markup (``<image>`` -> ``‹image›``), so the text still reads the same to a person. With
``on_markup: reject`` an image whose text holds reserved markup is not rendered (counted, with its reason).
`rcforge validate` looks for reserved markup the renderer did not put there (`stray`).
"""

from __future__ import annotations

import functools
import re

#: reserved by every export: the image placeholder LLaVA, LLaMA-Factory, ms-swift and InternVL read, and video
COMMON = r"</?image>|</?video>"
#: brackets that delimit markup -> a look-alike that delimits nothing
LOOKALIKE = str.maketrans({"<": "\u2039", ">": "\u203a", "[": "\u2045", "]": "\u2046", "{": "\u2774",
                           "}": "\u2775", "|": "\u00a6", "`": "\u02cb", "(": "\u2768", ")": "\u2769"})


@functools.lru_cache(maxsize=None)
def pattern(reserved: str) -> re.Pattern:
    """The compiled reserved markup of a format (its ``reserved`` with `COMMON`)."""
    return re.compile(f"(?:{COMMON})" + (f"|(?:{reserved})" if reserved else ""))


def find(text: str, reserved: str) -> list[str]:
    """The reserved tokens in ``text``, in order."""
    return [m.group() for m in pattern(reserved).finditer(text)]


def escape(text: str, reserved: str) -> str:
    """``text`` with each reserved token's brackets made look-alikes (idempotent; other text unchanged)."""
    return pattern(reserved).sub(lambda m: m.group().translate(LOOKALIKE), text)


class ReservedMarkup(ValueError):
    """Annotation text holding reserved markup, under ``on_markup: reject``."""

    def __init__(self, token: str, text: str, fmt: str):
        super().__init__(f"annotation text {text[:80]!r} holds {token!r}, markup of the {fmt} format "
                         f"(render.on_markup: reject)")
        self.token = token


def stray(text: str, fmt, *, first: bool = False) -> list[str]:
    """The reserved tokens of ``fmt`` in a rendered turn that the renderer did not write: what is left after the
    format's own markup (its mentions, points, answer frame and task identifiers) and, in a dialogue's ``first``
    turn, the leading ``<image>`` line are taken out."""
    if first and text.startswith("<image>\n"):
        text = text[len("<image>\n"):]
    for task_id in set(fmt.task_ids.values()):
        if text.startswith(task_id + fmt.task_id_joiner):
            text = text[len(task_id) + len(fmt.task_id_joiner):]
            break
    for own in (fmt.pattern, fmt.point_pattern, fmt.frame):
        if own:
            text = re.sub(own, " ", text)
    return find(text, fmt.reserved)
