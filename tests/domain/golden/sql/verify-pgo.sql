SELECT
  r.oid IS NOT NULL AS role_exists,
  CASE WHEN r.oid IS NULL THEN false ELSE has_function_privilege(r.oid, 'pg_catalog.pg_ls_dir(text, boolean, boolean)', 'EXECUTE') END AS pg_ls_dir_text_boolean_boolean,
  CASE WHEN r.oid IS NULL THEN false ELSE has_function_privilege(r.oid, 'pg_catalog.pg_stat_file(text, boolean)', 'EXECUTE') END AS pg_stat_file_text_boolean,
  CASE WHEN r.oid IS NULL THEN false ELSE has_function_privilege(r.oid, 'pg_catalog.pg_read_binary_file(text)', 'EXECUTE') END AS pg_read_binary_file_text,
  CASE WHEN r.oid IS NULL THEN false ELSE has_function_privilege(r.oid, 'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)', 'EXECUTE') END AS pg_read_binary_file_text_bigint_bigint_boolean
FROM (SELECT) AS one
LEFT JOIN pg_roles AS r ON r.rolname = '_crunchyrepl';
