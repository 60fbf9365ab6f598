-- The workspace's limit on calls to keyward's own API, per minute (keyward workspace limit).
-- NULL: no limit (the default); 0: every call is refused.
ALTER TABLE workspaces ADD COLUMN api_requests_per_minute INTEGER;
