"""The API shapes of a service's department rules (intake311.ownership): by attribute value (issue 20)
or by area of a boundary layer (issue 21). Apart from ``schemas`` (which re-exports them) to keep it short."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, model_validator

from citystat_common.codes import city_code
from intake311.areas import LAYER_RE, LAYER_RULE, MAX_CODE

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
AreaCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CODE)]


def _dept(v: str) -> str:
    return city_code(v, what="department code", slash=False)


def _layer(v: str) -> str:
    if not LAYER_RE.match(v):
        raise ValueError(LAYER_RULE)
    return v


class DepartmentRule(BaseModel):
    """Requests matching the rule belong to ``department_code`` instead of the service's owner (the
    first matching rule wins). Either ``attribute`` + ``value`` (a list attribute of the service and
    one of its values: "Encampment" in a park) or ``layer`` + ``area`` (an area code of a boundary
    layer, as the request is tagged when it comes in: a street tree in a park goes to Parks)."""

    model_config = ConfigDict(extra="forbid")
    attribute: Key | None = None
    value: Key | None = None
    layer: Annotated[str, AfterValidator(_layer)] | None = None
    area: AreaCode | None = None
    department_code: Annotated[str, AfterValidator(_dept)]

    @model_validator(mode="after")
    def _one_kind(self) -> DepartmentRule:
        by_attribute = self.attribute is not None or self.value is not None
        by_area = self.layer is not None or self.area is not None
        if by_attribute == by_area:
            raise ValueError("a department rule names either attribute and value, or layer and area")
        if by_attribute and (self.attribute is None or self.value is None):
            raise ValueError("a rule by attribute names both the attribute and its value")
        if by_area and (self.layer is None or self.area is None):
            raise ValueError("a rule by area names both the layer and the area's code")
        return self


class AttributeRuleRead(BaseModel):
    """An attribute rule as the service definition shows it."""

    attribute: str
    value: str
    department_code: str
    agency_responsible: str


class AreaRuleRead(BaseModel):
    """An area rule as the service definition shows it, with the area's name in the layer's version in
    force now; ``area_in_force`` false (and no name): that version has no such area, so the rule
    routes no new request until the city changes it or a later version has the area again."""

    layer: str
    area: str
    area_name: str | None
    area_in_force: bool
    department_code: str
    agency_responsible: str


DepartmentRuleRead = AttributeRuleRead | AreaRuleRead
