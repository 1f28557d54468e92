"""Writes the demo city's directory (libs/common/citystat_common/demo/directory.json).

Deterministic: the same file every run, so tests of every service can rely on its names.
Run it again only to change the demo city."""

import json
import random
from pathlib import Path

CLUSTERS = {
    "OPERATIONS": "Operations & Infrastructure",
    "SAFETY": "Public Safety",
    "HEALTH_HS": "Health & Human Services",
    "ADMIN": "Administration & Finance",
}
DEPARTMENTS = [
    ("STREETS", "Streets Department", "OPERATIONS"),
    ("WATER", "Water Department", "OPERATIONS"),
    ("SANITATION", "Sanitation Department", "OPERATIONS"),
    ("LI", "Licenses & Inspections", "OPERATIONS"),
    ("POLICE", "Police Department", "SAFETY"),
    ("FIRE", "Fire Department", "SAFETY"),
    ("PARKS", "Parks & Recreation", "HEALTH_HS"),
    ("HEALTH", "Department of Public Health", "HEALTH_HS"),
    ("DHS", "Department of Human Services", "HEALTH_HS"),
    ("LIBRARY", "Free Library", "HEALTH_HS"),
    ("REVENUE", "Department of Revenue", "ADMIN"),
    ("CONTACT311", "311 Contact Centre", "ADMIN"),
]
ROLES = [
    ("department_head", "Commissioner"),
    ("oit_partner", "OIT Business Partner"),
    ("hr_partner", "HR Business Partner"),
    ("budget_partner", "Budget Business Partner"),
    ("stat_partner", "Performance Analyst (CityStat)"),
    ("customer_service_officer", "Customer Service Officer"),
]
FIRST = """Aisha Marcus Elena Darnell Priya Tomas Keisha Owen Mei Rafael Nadia Gregory Yolanda Samuel Ingrid Andre
Lucia Patrick Fatima Desmond Hannah Victor Rosa Jamal Colleen Ibrahim Teresa Malcolm Sofia Brendan Latoya Ezra Grace
Hector Naomi Wesley Carmen Dmitri Alicia Terrence Beatriz Curtis Monique Felix Renee Julian Tamika Oscar Vivian Roland
Simone Kwame Adele Lionel Marisol Douglas Imani Reuben Paulina Gordon Shanice Anton Lorraine Isaac Celeste Franklin
Zora Miguel Bernadette Theo Ruth Damon Yvette Cedric Harriet Nelson Lydia Warren Esther""".split()
LAST = """Okafor Brennan Castillo Whitfield Raman Novak Harris Gallagher Chen Ortega Haddad Lindqvist Freeman Abernathy
Sorensen Baptiste Moreau Kowalski Nguyen Delgado Ashby Mensah Romano Thibodeaux Fitzgerald Yamamoto Adeyemi Carver
Petrov Salazar Holloway Iyer Quinlan Ferreira Blackwell Duarte Osei Lombardi Prescott Valdez Kim Morrison Achebe
Hartley Santiago Bianchi Drummond Acosta Whitaker Nakamura Oyelaran Mbeki Costa Harrington Villanueva""".split()


def main() -> None:
    rng = random.Random(311)
    used: set[str] = set()

    def person(title: str) -> dict:
        while True:
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            if name not in used:
                used.add(name)
                break
        first, last = name.lower().split()
        return {
            "person_name": name,
            "person_title": title,
            "person_email": f"{first}.{last}@city.example.gov",
            "person_phone": f"+1 215-555-{rng.randrange(1000, 9999)}",
        }

    rows = []
    md = person("Managing Director")
    first_dept = DEPARTMENTS[0]
    rows.append({"department_code": first_dept[0], "department_name": first_dept[1], "cluster_code": first_dept[2],
                 "cluster_name": CLUSTERS[first_dept[2]], "role": "managing_director", **md})
    deputies = {code: person(f"Deputy Mayor, {name}") for code, name in CLUSTERS.items()}
    seen_clusters: set[str] = set()
    for code, name, cluster in DEPARTMENTS:
        base = {"department_code": code, "department_name": name, "cluster_code": cluster, "cluster_name": CLUSTERS[cluster]}
        if cluster not in seen_clusters:
            seen_clusters.add(cluster)
            rows.append({**base, "role": "deputy_mayor", **deputies[cluster]})
        for role, title in ROLES:
            rows.append({**base, "role": role, **person(f"{title}, {name}")})
    out = Path(__file__).resolve().parents[1] / "libs/common/citystat_common/demo/directory.json"
    # The staff who are on no senior team (call-takers, queue coordinators, analysts) are kept as they are.
    staff = json.loads(out.read_text()).get("staff", []) if out.exists() else []
    out.write_text(json.dumps({"rows": rows, "staff": staff}, indent=1) + "\n")
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
