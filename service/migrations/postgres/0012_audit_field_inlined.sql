-- govtrust_audit_field (0008) was declared IMMUTABLE, but convert_to is
-- only STABLE. PostgreSQL does not inline a SQL function whose body is less
-- immutable than its declaration, so every call was a function call of its
-- own: five per audit entry, each set up (parsed and planned) once per
-- transaction and run through the executor on every call. STABLE is what
-- the body is; declared so, the planner inlines the body into
-- govtrust_audit_append's hash expression. The hash it computes is the
-- same. PostgreSQL only (SQLite computes the hash in the service).
ALTER FUNCTION govtrust_audit_field(text) STABLE;
