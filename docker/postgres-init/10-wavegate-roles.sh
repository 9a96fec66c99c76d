#!/bin/sh
# Wavegate's two database roles, made once by the PostgreSQL image's entrypoint (as its
# superuser) when it initialises an empty data directory; docker-compose.yml mounts this
# directory on /docker-entrypoint-initdb.d. README: Database roles.
#   owner (WAVEGATE_DB_OWNER_ROLE, wavegate_owner): owns the database and its schema; `migrate`
#       runs as it, so it owns every table.
#   app (WAVEGATE_DB_APP_ROLE, wavegate_app): web, workers and beat. Row rights on every table
#       the owner creates; migration audit 0006 then leaves it INSERT and SELECT only on the
#       audit events and checkpoints.
# `manage.py db_roles` does the same for a database that exists already.
set -eu

: "${WAVEGATE_DB_OWNER_PASSWORD:?set WAVEGATE_DB_OWNER_PASSWORD}"
: "${WAVEGATE_DB_APP_PASSWORD:?set WAVEGATE_DB_APP_PASSWORD}"

psql --no-psqlrc --set ON_ERROR_STOP=1 \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set db="$POSTGRES_DB" \
    --set owner="${WAVEGATE_DB_OWNER_ROLE:-wavegate_owner}" \
    --set app="${WAVEGATE_DB_APP_ROLE:-wavegate_app}" \
    --set owner_password="$WAVEGATE_DB_OWNER_PASSWORD" \
    --set app_password="$WAVEGATE_DB_APP_PASSWORD" <<'SQL'
SELECT format(
    'CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %L',
    role, password
)
FROM (VALUES (:'owner', :'owner_password'), (:'app', :'app_password')) AS wanted (role, password)
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role)
\gexec

ALTER DATABASE :"db" OWNER TO :"owner";
ALTER SCHEMA public OWNER TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"app";
GRANT USAGE ON SCHEMA public TO :"app";
-- Every table and sequence `migrate` (as the owner) creates is the app's to change rows of;
-- audit/migrations/0006 takes UPDATE, DELETE and TRUNCATE back on the audit tables.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
SQL
