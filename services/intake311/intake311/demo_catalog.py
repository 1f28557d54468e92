"""The demo city's 311 catalog (``make run``): the 19 services and 8 owning departments that
migration 0002 used to seed into every database, with the promises migration 0007 added (offensive
graffiti within one business day, questions never linked as duplicates, counts never negative).
An empty city starts without them (issue 20); the demo loads them through the catalog import
(``demo_catalog_rows``: the rows of a catalog file), tests with ``seed_demo_catalog``."""

from __future__ import annotations

from typing import Any

from citystat_common.auth import Actor
from citystat_common.db import create_engine, session_factory
from citystat_common.uow import UnitOfWork
from intake311.catalog_file import read_catalog
from intake311.catalog_import import CatalogReport, departments_resolver, import_catalog
from intake311.config import Settings
from intake311.deps import Deps
from intake311.models import PLUMBING, Department

DEPARTMENTS = {
    "STREETS": "Streets Department",
    "WATER": "Water Department",
    "SANITATION": "Sanitation Department",
    "LI": "Licenses & Inspections",
    "POLICE": "Police Department",
    "PARKS": "Parks & Recreation",
    "HEALTH": "Department of Public Health",
    "CONTACT311": "311 Contact Centre",
}


def _list(code: str, description: str, values: list[tuple[str, str]], *, required: bool = True,
          datatype: str = "singlevaluelist", order: int = 1) -> dict[str, Any]:
    return {
        "code": code, "variable": True, "datatype": datatype, "required": required,
        "datatype_description": None, "order": order, "description": description,
        "values": [{"key": k, "name": n} for k, n in values],
    }


def _field(code: str, description: str, datatype: str = "string", *, required: bool = False, order: int = 1,
           datatype_description: str | None = None) -> dict[str, Any]:
    return {
        "code": code, "variable": True, "datatype": datatype, "required": required,
        "datatype_description": datatype_description, "order": order, "description": description, "values": [],
    }


YES_NO = [("yes", "Yes"), ("no", "No")]

# service_code, name, group, keywords, department, (amount, unit), type, description, notice, attributes
SERVICES: list[tuple[Any, ...]] = [
    ("POTHOLE", "Pothole", "Streets", "pothole, road, street, hole, asphalt", "STREETS", (3, "business_days"), "realtime",
     "A hole or depression in the road surface.",
     "Street crews repair reported potholes within three business days.",
     [_list("SIZE", "How large is the pothole?", [("small", "Smaller than a dinner plate"), ("medium", "Up to a car tire"), ("large", "Larger than a car tire")]),
      _list("LOCATION", "Where in the street is it?", [("lane", "Travel lane"), ("crosswalk", "Crosswalk"), ("bike_lane", "Bike lane"), ("curb", "Next to the curb")], required=False, order=2)]),
    ("STREETLIGHT", "Street light out", "Streets", "street light, lamp, light, dark, pole", "STREETS", (5, "business_days"), "realtime",
     "A street light that is out, flickering or on during the day.",
     "Street lighting repairs are made within five business days.",
     [_list("ISSUE", "What is wrong with the light?", [("out", "Light is out"), ("flickering", "Light is flickering"), ("day_burning", "Light is on during the day"), ("damaged", "Pole or fixture damaged")]),
      _field("POLE_NUMBER", "Pole number (on a tag on the pole), if visible", order=2, datatype_description="letters and digits, e.g. SL-10422")]),
    ("DUMPING", "Illegal dumping", "Sanitation", "dumping, trash, debris, tires, furniture, short dumping", "SANITATION", (5, "business_days"), "realtime",
     "Trash, debris, tires or furniture dumped on public property or a vacant lot.",
     "Sanitation removes illegally dumped material within five business days.",
     [_list("MATERIAL", "What was dumped? (choose all that apply)", [("household", "Household trash"), ("furniture", "Furniture"), ("tires", "Tires"), ("construction", "Construction debris"), ("appliances", "Appliances")], datatype="multivaluelist"),
      _field("ITEM_COUNT", "About how many large items?", "number", order=2),
      _list("WITNESSED", "Did you see who dumped it?", YES_NO, required=False, order=3)]),
    ("MISSED_TRASH", "Missed trash collection", "Sanitation", "trash, garbage, recycling, collection, pickup, missed", "SANITATION", (1, "business_days"), "realtime",
     "Trash, recycling or yard waste that was set out on time but not collected.",
     "Missed collections are picked up within one business day.",
     [_list("COLLECTION", "What was missed?", [("trash", "Trash"), ("recycling", "Recycling"), ("yard_waste", "Yard waste")]),
      _field("SCHEDULED", "When was collection scheduled?", "datetime", order=2, datatype_description="ISO 8601 date and time")]),
    ("ABANDONED_VEHICLE", "Abandoned vehicle", "Streets", "abandoned, car, vehicle, parked, junk", "POLICE", (10, "business_days"), "realtime",
     "A vehicle that appears abandoned on a public street.",
     "Police investigate abandoned vehicles within ten business days.",
     [_field("PLATE", "License plate, if any", order=1),
      _field("MAKE", "Make and model", order=2),
      _field("COLOR", "Color", order=3),
      _field("DAYS_PARKED", "About how many days has it been there?", "number", required=True, order=4)]),
    ("GRAFFITI", "Graffiti removal", "Streets", "graffiti, vandalism, paint, tag", "STREETS", (7, "business_days"), "realtime",
     "Graffiti on public property or, with the owner's consent, private property.",
     "Graffiti is removed within seven business days; offensive graffiti within one.",
     [_list("SURFACE", "What surface is it on?", [("wall", "Building wall"), ("fence", "Fence"), ("sign", "Sign or pole"), ("sidewalk", "Sidewalk"), ("other", "Other")]),
      _list("OFFENSIVE", "Is it offensive or hateful?", YES_NO, order=2)]),
    ("WATER_MAIN", "Water main break", "Water", "water, main, break, leak, flooding, street", "WATER", (8, "calendar_hours"), "realtime",
     "Water running in the street from a broken main.",
     "Water main breaks are an emergency: a crew is dispatched around the clock.",
     [_list("FLOW", "How much water?", [("trickle", "A trickle"), ("steady", "A steady flow"), ("gushing", "Gushing or flooding")])]),
    ("HYDRANT", "Leaking fire hydrant", "Water", "hydrant, fire hydrant, leak, open hydrant", "WATER", (2, "business_days"), "realtime",
     "A fire hydrant that leaks or has been opened.", None, []),
    ("TREE_DOWN", "Tree down", "Parks", "tree, branch, fallen, storm, limb", "PARKS", (24, "calendar_hours"), "realtime",
     "A fallen tree or large limb on a street, sidewalk or property.",
     "Fallen trees blocking a street are cleared within a day.",
     [_list("BLOCKING", "What is it blocking? (choose all that apply)", [("street", "Street"), ("sidewalk", "Sidewalk"), ("power_lines", "Power lines"), ("property", "Private property"), ("nothing", "Nothing")], datatype="multivaluelist")]),
    ("TREE_PLANTING", "Street tree planting request", "Parks", "tree, planting, street tree, greening", "PARKS", (30, "business_days"), "batch",
     "Ask for a street tree in front of your home; requests are reviewed in batches each season.",
     "Planting requests are reviewed in batches; you will get a request number once yours is accepted.",
     []),
    ("NOISE", "Noise complaint", "Quality of life", "noise, loud, music, party, construction noise", "LI", (2, "business_days"), "realtime",
     "Ongoing loud noise from a business, construction site or property.", None,
     [_list("SOURCE", "What kind of noise?", [("music", "Music or party"), ("construction", "Construction"), ("business", "Business or bar"), ("alarm", "Alarm"), ("other", "Other")]),
      _field("WHEN", "When does it usually happen?", "text", order=2)]),
    ("RODENTS", "Rodents", "Health", "rats, mice, rodents, vermin, pests", "HEALTH", (10, "business_days"), "realtime",
     "Rats or mice seen outdoors on public or private property.",
     "Health inspectors respond to rodent reports within ten business days.",
     [_list("WHERE", "Where did you see them?", [("street", "Street or alley"), ("vacant_lot", "Vacant lot"), ("building", "Around a building"), ("park", "Park")]),
      _field("SIGHTINGS", "Describe what you saw", "text", order=2)]),
    ("SIDEWALK", "Sidewalk repair", "Streets", "sidewalk, trip hazard, broken, curb", "STREETS", (20, "business_days"), "realtime",
     "A broken or raised sidewalk that is a trip hazard.", None, []),
    ("DEAD_ANIMAL", "Dead animal removal", "Sanitation", "dead animal, carcass, roadkill", "SANITATION", (2, "business_days"), "realtime",
     "A dead animal on a street or sidewalk.", None, []),
    ("VACANT_LOT", "Overgrown vacant lot", "Quality of life", "vacant lot, weeds, overgrown, blight", "LI", (30, "calendar_days"), "realtime",
     "A vacant lot with high weeds or debris.", None, []),
    ("NO_PERMIT", "Construction without a permit", "Quality of life", "permit, construction, unlicensed, building", "LI", (5, "business_days"), "realtime",
     "Construction or demolition that appears to have no permit posted.", None,
     [_field("WORK_TYPE", "What work is being done?", order=1, required=True)]),
    ("PARK_MAINTENANCE", "Park maintenance", "Parks", "park, playground, bench, field, court", "PARKS", (10, "business_days"), "realtime",
     "Broken equipment, litter or other maintenance needed in a park or playground.", None, []),
    ("FOOD_SAFETY", "Restaurant or food safety complaint", "Health", "restaurant, food, sick, kitchen, unsanitary", "HEALTH", (5, "business_days"), "realtime",
     "Unsanitary conditions at a restaurant or food business.", None, []),
    ("INFORMATION", "Information request", "General", "information, question, hours, help", "CONTACT311", (1, "business_days"), "realtime",
     "A question about city services, answered by the 311 Contact Centre.", None, []),
]

# migration 0007's promises
LEVEL_RULES = {"GRAFFITI": "OFFENSIVE=yes -> 1 business_days"}
NO_DUPLICATES = ("INFORMATION",)
NON_NEGATIVE = {"DUMPING": ("ITEM_COUNT",), "ABANDONED_VEHICLE": ("DAYS_PARKED",)}


def demo_catalog_rows() -> list[dict[str, Any]]:
    """The demo catalog as the rows of a catalog file (intake311.catalog_file): one row per
    attribute, the service's columns on its first row."""
    rows: list[dict[str, Any]] = []
    for code, name, group, keywords, dept, (amount, unit), type_, description, notice, attributes in SERVICES:
        service = {"service_code": code, "service_name": name, "group": group, "department_code": dept,
                   "service_level_amount": amount, "service_level_unit": unit, "calendar": "CITY", "type": type_,
                   "keywords": keywords, "description": description, "service_notice": notice,
                   "service_level_rules": LEVEL_RULES.get(code), "duplicates": "no" if code in NO_DUPLICATES else None}
        for i, a in enumerate(attributes or [None]):
            row = dict(service) if i == 0 else {"service_code": code}
            if a is not None:
                row.update({
                    "attribute_code": a["code"], "attribute_description": a["description"],
                    "attribute_datatype": a["datatype"], "attribute_required": a["required"],
                    "attribute_order": a["order"], "attribute_datatype_description": a["datatype_description"],
                    "attribute_values": "|".join(f"{v['key']}={v['name']}" for v in a["values"]) or None,
                    "attribute_minimum": 0 if a["code"] in NON_NEGATIVE.get(code, ()) else None,
                })
            rows.append(row)
    return rows


async def seed_demo_catalog(uow: UnitOfWork, deps: Deps, *, actor: Actor) -> CatalogReport:
    """The demo catalog written straight into a database with no directory beside it (tests,
    benchmarks): its departments as local copies (as the directory's events would leave them),
    then the catalog import. Idempotent. Never commits."""
    for code, name in DEPARTMENTS.items():
        await uow.add_if_absent(Department, dict(code=code, name=name, department_id=None, active=True))
    entries, errors = read_catalog(demo_catalog_rows())
    return await import_catalog(uow, deps, entries=entries, rows=len(demo_catalog_rows()), errors=errors,
                                resolve=departments_resolver(uow, deps), actor=actor)


async def load_demo_catalog(url: str, settings: Settings | None = None) -> CatalogReport:
    """``seed_demo_catalog`` into the database at ``url``, committed (test fixtures, benchmarks)."""
    engine = create_engine(url)
    try:
        async with UnitOfWork(session_factory(engine), PLUMBING) as uow:
            report = await seed_demo_catalog(uow, Deps(settings or Settings(database_url=url)),
                                             actor=Actor(kind="key", name="demo catalog"))
            if not report.ok:
                raise RuntimeError(f"the demo catalog does not import: {report.errors}")
            await uow.commit()
            return report
    finally:
        await engine.dispose()
