"""The defect types an inspector can name on an NG verdict, and which of them an item offers.

An item master may name the defect types that can occur on it (``defect_types``): a function
test of a piston has no scratch to report. ``None`` means the item offers every type. The server
refuses an unknown code at publish, because a tablet has words only for these; both ends read
this one list.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFECT_TYPES: tuple[str, ...] = (
    "scratch",
    "dent",
    "foreign_matter",
    "marking_illegible",
    "marking_mismatch",
    "bore_oversize",
    "bore_undersize",
    "piston_stuck",
    "other",
)


class DefectTypesInvalid(ValueError):
    """An item's defect types that no tablet could offer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_defect_types(value: object) -> list[str] | None:
    """The item's defect types in catalogue order, or ``None`` for every type.

    An empty list is refused: an item where no defect can be named could never be judged NG.
    """
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise DefectTypesInvalid("defect_types must be a list of defect type codes")
    codes = list(value)
    if not codes:
        raise DefectTypesInvalid("defect_types must name at least one type (or be null for all)")
    unknown = [c for c in codes if c not in DEFECT_TYPES]
    if unknown:
        raise DefectTypesInvalid(
            f"unknown defect types {', '.join(map(str, unknown))}; "
            f"known: {', '.join(DEFECT_TYPES)}"
        )
    return [c for c in DEFECT_TYPES if c in codes]


def unoffered(given: Sequence[str], offered: Sequence[str] | None) -> list[str]:
    """The codes of a verdict that its item does not offer (``offered`` ``None``: every type).

    The tablet shows an inspector only the item's types, so a code outside them comes from a
    client that did not read the item, and the QA report would count a defect the item cannot
    have."""
    allowed = DEFECT_TYPES if offered is None else offered
    return [code for code in given if code not in allowed]
