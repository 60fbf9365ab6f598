-- Listings page by id within their owner (identities.listIdentities, permissions.listPermissions,
-- permissions.listRoles, ratelimit.listOverrides): with these, a page is one index range from its
-- cursor, however deep, instead of a sort of every row the owner has.
CREATE INDEX identities_workspace_id ON identities(workspace_id, id);
CREATE INDEX permissions_workspace_id ON permissions(workspace_id, id);
CREATE INDEX roles_workspace_id ON roles(workspace_id, id);
CREATE INDEX ratelimit_overrides_namespace_id ON ratelimit_overrides(namespace_id, id);
