#!/usr/bin/env bash
# Creates one role and one database per CityStat service, each database owned by its role, so
# that no service can read another's tables (design: "No service reads another's tables").
#
# Run by the postgres image from /docker-entrypoint-initdb.d on the first start only (when the
# data volume is empty), as the superuser, over the local socket. Inputs (see docker-compose.yml):
#   CITYSTAT_DATABASES     space-separated names, e.g. "directory intake311 indicators escalation"
#   <NAME>_DB_PASSWORD     the password of each role, e.g. DIRECTORY_DB_PASSWORD
# It is idempotent, so it can also be re-run by hand against a live server (PG* variables set):
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-init-databases.sh
set -euo pipefail

databases="${CITYSTAT_DATABASES:-directory intake311 indicators escalation}"
psql_admin=(psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-postgres}")

for name in $databases; do
  if [[ ! "$name" =~ ^[a-z][a-z0-9_]{0,62}$ ]]; then
    echo "init-databases: refusing database name '$name'" >&2
    exit 1
  fi
  var="$(echo "$name" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  password="${!var:-}"
  if [[ -z "$password" ]]; then
    echo "init-databases: $var is not set" >&2
    exit 1
  fi
  # psql variables (:"name" quotes an identifier, :'pass' a literal): no string pasting into SQL.
  "${psql_admin[@]}" --dbname "${POSTGRES_DB:-postgres}" -v name="$name" -v pass="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \gexec
ALTER ROLE :"name" WITH LOGIN PASSWORD :'pass';
SELECT format('CREATE DATABASE %I OWNER %I ENCODING ''UTF8'' TEMPLATE template0', :'name', :'name')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') \gexec
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT ALL ON DATABASE :"name" TO :"name";
SQL
  # PostgreSQL 15+ no longer lets every role create in public; the owner role does.
  "${psql_admin[@]}" --dbname "$name" -v name="$name" <<'SQL'
ALTER SCHEMA public OWNER TO :"name";
SQL
  echo "init-databases: $name ready"
done
