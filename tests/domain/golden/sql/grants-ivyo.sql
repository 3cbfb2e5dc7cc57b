-- the replication role of IVYO (IvorySQL operator), created only if it is missing
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '_ivoryrepl') THEN
    CREATE ROLE _ivoryrepl WITH LOGIN REPLICATION;
  END IF;
END
$$;

-- the functions _ivoryrepl runs when rewinding a former primary (pg_rewind)
GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO _ivoryrepl;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO _ivoryrepl;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO _ivoryrepl;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO _ivoryrepl;
