"""seed the city's 311 service catalog

The catalog a city starts with: its business calendar, the departments that own the services
(code and name from the demo city, so agency_responsible has a name before any directory event
arrives) and the services with their service levels and attribute definitions. The data is
frozen here on purpose: a migration must not change when the application code does. Later
changes go through the admin API (scope 311:admin) or a new migration.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:45:00
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import citystat_common.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NOW = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)

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


def _list(code, description, values, *, required=True, datatype="singlevaluelist", order=1):
    return {
        "code": code, "variable": True, "datatype": datatype, "required": required,
        "datatype_description": None, "order": order, "description": description,
        "values": [{"key": k, "name": n} for k, n in values],
    }


def _field(code, description, datatype="string", *, required=False, order=1, datatype_description=None):
    return {
        "code": code, "variable": True, "datatype": datatype, "required": required,
        "datatype_description": datatype_description, "order": order, "description": description, "values": [],
    }


YES_NO = [("yes", "Yes"), ("no", "No")]

# service_code, name, group, keywords, department, (amount, unit), type, description, notice, attributes
SERVICES = [
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


def upgrade() -> None:
    meta = sa.MetaData()
    calendars = sa.Table(
        "calendars", meta,
        sa.Column("code", sa.String(40)), sa.Column("name", sa.String(200)), sa.Column("opens", sa.String(5)),
        sa.Column("closes", sa.String(5)), sa.Column("workdays", sa.JSON), sa.Column("holidays", sa.JSON),
        sa.Column("federal_holidays", sa.Boolean), sa.Column("updated_at", citystat_common.db.UTCDateTime()),
    )
    departments = sa.Table(
        "departments", meta,
        sa.Column("code", sa.String(40)), sa.Column("name", sa.String(200)), sa.Column("department_id", sa.String(36)),
        sa.Column("active", sa.Boolean), sa.Column("updated_at", citystat_common.db.UTCDateTime()),
    )
    services = sa.Table(
        "services", meta,
        sa.Column("service_code", sa.String(40)), sa.Column("service_name", sa.String(200)),
        sa.Column("description", sa.Text), sa.Column("group_name", sa.String(100)), sa.Column("keywords", sa.String(500)),
        sa.Column("type", sa.String(20)), sa.Column("department_code", sa.String(40)), sa.Column("sla_amount", sa.Float),
        sa.Column("sla_unit", sa.String(20)), sa.Column("calendar_code", sa.String(40)), sa.Column("service_notice", sa.Text),
        sa.Column("attributes", sa.JSON), sa.Column("active", sa.Boolean),
        sa.Column("created_at", citystat_common.db.UTCDateTime()), sa.Column("updated_at", citystat_common.db.UTCDateTime()),
    )
    op.bulk_insert(calendars, [{
        "code": "CITY", "name": "City business hours (Mon-Fri 08:00-17:00, federal and city holidays)",
        "opens": "08:00", "closes": "17:00", "workdays": [0, 1, 2, 3, 4], "holidays": ["2026-11-27"],
        "federal_holidays": True, "updated_at": NOW,
    }])
    op.bulk_insert(departments, [
        {"code": code, "name": name, "department_id": None, "active": True, "updated_at": NOW}
        for code, name in DEPARTMENTS.items()
    ])
    op.bulk_insert(services, [
        {
            "service_code": code, "service_name": name, "description": description, "group_name": group,
            "keywords": keywords, "type": type_, "department_code": dept, "sla_amount": float(sla[0]), "sla_unit": sla[1],
            "calendar_code": "CITY", "service_notice": notice, "attributes": attributes, "active": True,
            "created_at": NOW, "updated_at": NOW,
        }
        for code, name, group, keywords, dept, sla, type_, description, notice, attributes in SERVICES
    ])


def downgrade() -> None:
    codes = [s[0] for s in SERVICES]
    services = sa.table("services", sa.column("service_code"))
    op.execute(services.delete().where(services.c.service_code.in_(codes)))
    calendars = sa.table("calendars", sa.column("code"))
    op.execute(calendars.delete().where(calendars.c.code == "CITY"))
    departments = sa.table("departments", sa.column("code"))
    op.execute(departments.delete().where(departments.c.code.in_(list(DEPARTMENTS))))
