//! The pages of the errors about resources: what was not found, already exists or is gone.

use super::ErrorDoc;
use crate::http::error::ErrorCode;

pub const KEY_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "The key named in the request (its `keyId`, or for `keys.whoami` the \
            key itself) does not match a live key in the workspace of your root key. A key \
            that never existed, one that was deleted, one whose API was deleted and one that \
            belongs to another workspace all get this same answer, so that no workspace can \
            probe another's keys.",
    example_detail: "The specified key was not found.",
    how_to_fix: &[
        "Check the `keyId`: key ids start with `key_` and are case-sensitive.",
        "List the keys of the API you expect it in with `apis.listKeys` and confirm it is \
                there.",
        "Make sure your root key belongs to the same workspace as the key; a root key sees \
                only its own workspace.",
    ],
    common_mistakes: &[
        "Sending the key's secret value where its `keyId` is expected, or the other way \
                round.",
        "Using a root key of another environment, for example a staging key against \
                production keys.",
        "Expecting `keys.verifyKey` to fail this way: verification answers an unknown key \
                with HTTP 200, `valid: false` and code `NOT_FOUND`.",
    ],
    related: &[
        ErrorCode::ApiNotFound,
        ErrorCode::AuthenticationKeyNotFound,
        ErrorCode::InsufficientPermissions,
    ],
};

pub const WORKSPACE_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "Your root key was found, but the workspace it is bound to is no longer \
            in keyward's database. Every root key acts on exactly one workspace, so without it \
            the key cannot do anything. This rarely comes from the request; it usually means \
            the server now runs on a different or restored database.",
    example_detail: "The provided root key is invalid. The requested workspace does not \
            exist.",
    how_to_fix: &[
        "Confirm which database the server uses (`--database` or `KEYWARD_DATABASE`) and \
                that it is the one you expect.",
        "Run `keyward root-key list --workspace ws_...` against that database to see \
                whether the workspace and its keys are there.",
        "If the workspace is really gone, create one with `keyward workspace create --name \
                N` and issue a root key for it with `keyward root-key create --workspace \
                ws_...`.",
    ],
    common_mistakes: &[
        "Swapping or restoring the database while clients still hold root keys from the \
                old one.",
        "Running the CLI and the server against different databases.",
    ],
    related: &[
        ErrorCode::AuthenticationKeyNotFound,
        ErrorCode::WorkspaceDisabled,
    ],
};

pub const API_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "The `apiId` in the request does not name a live API in your root key's \
            workspace: it never existed, it was removed with `apis.deleteApi`, or it belongs \
            to another workspace. Some routes, such as `keys.createKey` and `apis.listKeys`, \
            also answer this way when your root key may not use that API, so that the reply \
            does not reveal whether it exists.",
    example_detail: "The requested API does not exist or has been deleted.",
    how_to_fix: &[
        "Check the `apiId`: API ids start with `api_` and are case-sensitive.",
        "Make sure the root key belongs to the workspace that owns the API.",
        "If the API does exist, check with `keyward root-key list --workspace ws_...` that \
                the key holds a permission for it, such as `api.*.create_key` or \
                `api.<apiId>.create_key`.",
    ],
    common_mistakes: &[
        "Sending the API's name instead of its id.",
        "Using a root key limited to one API (`api.<otherId>...` permissions) on a route \
                that hides permission failures.",
    ],
    related: &[
        ErrorCode::KeyNotFound,
        ErrorCode::InsufficientPermissions,
        ErrorCode::ProtectedResource,
    ],
};

pub const MIGRATION_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "A `keys.migrateKeys` call named a `migrationId` that is not registered \
            in your root key's workspace. A migration records how the imported keys were \
            hashed, and keys can only be imported under a migration that already exists in the \
            same workspace.",
    example_detail: "The requested migration does not exist or has been deleted.",
    how_to_fix: &[
        "Check the `migrationId` for typos; ids are case-sensitive.",
        "Ask the operator of this server which migrations exist for your workspace, and to \
                register one if none fits.",
        "Make sure the root key belongs to the workspace the migration was registered for.",
    ],
    common_mistakes: &[
        "Reusing a migration id from another server, such as Unkey's hosted service.",
        "Importing with a root key of a different workspace than the migration's.",
    ],
    related: &[ErrorCode::ApiNotFound, ErrorCode::InvalidInput],
};

pub const KEY_SPACE_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "Each API keeps its keys in a keyspace (id `ks_...`). keyward found the \
            API or key you named, but not the keyspace behind it. A well-formed request cannot \
            cause this on its own: it points at inconsistent data on the server, for example \
            after a partial restore or a manual database edit.",
    example_detail: "The keyspace of this API could not be found.",
    how_to_fix: &[
        "Retry once; if it happens again, note `meta.requestId` and report it to the \
                operator.",
        "Operators: look up that request id in the server log and inspect the API's \
                records in the database.",
        "As a workaround, create a new API with `apis.createApi` and issue keys there.",
    ],
    common_mistakes: &[
        "Editing or deleting rows in keyward's database by hand.",
        "Restoring only part of a database backup.",
    ],
    related: &[
        ErrorCode::ApiNotFound,
        ErrorCode::KeyAuthNotFound,
        ErrorCode::UnexpectedError,
    ],
};

pub const PERMISSION_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "A permission named in the request, by id (`perm_...`) or by slug, does \
            not exist in your workspace. `permissions.getPermission` and \
            `permissions.deletePermission` return this for an unknown permission, and \
            `keys.removePermissions` returns it when a slug you asked to remove is not defined \
            at all.",
    example_detail: "Permission 'documents.write' was not found.",
    how_to_fix: &[
        "Compare the slug with the output of `permissions.listPermissions`.",
        "If the permission should exist, create it with `permissions.createPermission`.",
        "When removing permissions from a key, send only slugs it has; `keys.getKey` lists \
                them.",
    ],
    common_mistakes: &[
        "Sending a permission's display name where its slug or id is expected.",
        "Referring to a permission right after another process deleted it.",
    ],
    related: &[
        ErrorCode::RoleNotFound,
        ErrorCode::PermissionAlreadyExists,
        ErrorCode::KeyNotFound,
    ],
};

pub const ROLE_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "A role named in the request, by id (`role_...`) or by name, does not \
            exist in your workspace. Unlike permission slugs, roles are never created on the \
            fly: `keys.createKey`, `keys.updateKey` and the `keys.*Roles` routes fail with \
            this code if any listed role is unknown, and `permissions.getRole` and \
            `permissions.deleteRole` return it for an unknown role.",
    example_detail: "Role 'admin' was not found.",
    how_to_fix: &[
        "List the existing roles with `permissions.listRoles` and check the spelling.",
        "Create missing roles with `permissions.createRole` before assigning them to keys.",
        "Send the original request again.",
    ],
    common_mistakes: &[
        "Assuming roles are created automatically, the way permission slugs are.",
        "Creating roles with a root key of one workspace and assigning them with a key of \
                another.",
    ],
    related: &[
        ErrorCode::PermissionNotFound,
        ErrorCode::RoleAlreadyExists,
        ErrorCode::KeyNotFound,
    ],
};

pub const KEY_AUTH_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "\"Key auth\" is the older name of a keyspace, the record that holds an \
            API's keys and their settings. This code reports the same situation as \
            `key_space_not_found`: the API exists, but its keyspace record is missing. It is \
            kept for clients that expect it. It does not come from a mistake in the request \
            but from inconsistent data on the server.",
    example_detail: "The key configuration of this API could not be found.",
    how_to_fix: &[
        "Retry once; if it happens again, report `meta.requestId` to the operator.",
        "Operators: find that request id in the server log and check the API's records in \
                the database.",
        "As a workaround, create a new API with `apis.createApi`.",
    ],
    common_mistakes: &["Editing keyward's database by hand or restoring only part of a backup."],
    related: &[ErrorCode::KeySpaceNotFound, ErrorCode::ApiNotFound],
};

pub const RATELIMIT_NAMESPACE_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "The ratelimit namespace named in the request, by name or by id \
            (`rlns_...`), does not exist in your workspace. The override routes \
            (`ratelimit.setOverride`, `getOverride`, `listOverrides` and `deleteOverride`) \
            need an existing namespace; only `ratelimit.limit` and `ratelimit.multiLimit` \
            create a namespace on its first use.",
    example_detail: "This namespace does not exist.",
    how_to_fix: &[
        "Check that the name is spelled exactly as in your `ratelimit.limit` calls.",
        "Create the namespace by making one `ratelimit.limit` call with it, using a root \
                key that holds `ratelimit.*.create_namespace`.",
        "Set the override again.",
    ],
    common_mistakes: &[
        "Configuring overrides before any traffic has reached the namespace.",
        "Namespace names that differ between environments, such as `api.requests` and \
                `api_requests`.",
    ],
    related: &[
        ErrorCode::RatelimitOverrideNotFound,
        ErrorCode::RatelimitNamespaceGone,
    ],
};

pub const RATELIMIT_OVERRIDE_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "No override in the namespace matches the identifier in the request. \
            `ratelimit.getOverride` also answers this way when your root key may not read \
            overrides there, so that the reply does not reveal whether one exists. \
            `ratelimit.deleteOverride` matches the identifier exactly: to remove a wildcard \
            override, send the pattern itself.",
    example_detail: "This override does not exist.",
    how_to_fix: &[
        "List the namespace's overrides with `ratelimit.listOverrides` and copy the \
                identifier exactly, including any `*`.",
        "Make sure the root key holds `ratelimit.*.read_override` or \
                `ratelimit.<namespaceId>.read_override`.",
        "If the override should exist, create it with `ratelimit.setOverride`.",
    ],
    common_mistakes: &[
        "Deleting by a concrete identifier an override that was set as a wildcard pattern.",
        "Looking in the wrong namespace.",
    ],
    related: &[
        ErrorCode::RatelimitNamespaceNotFound,
        ErrorCode::InsufficientPermissions,
    ],
};

pub const IDENTITY_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "The identity named in the request does not exist or was deleted. \
            Identity routes accept either keyward's identity id (`id_...`) or your own \
            `externalId`; neither matched a live identity in your root key's workspace.",
    example_detail: "This identity does not exist.",
    how_to_fix: &[
        "Check the value: the `externalId` is the id from your own system, such as a user \
                id, while the identity id is the one keyward returned.",
        "Search with `identities.listIdentities` and its `search` field.",
        "If it should exist, create it with `identities.createIdentity`.",
    ],
    common_mistakes: &[
        "Using an identity after `identities.deleteIdentity`.",
        "Letter case or whitespace differences in the `externalId`, which is compared \
                exactly.",
    ],
    related: &[ErrorCode::IdentityAlreadyExists, ErrorCode::KeyNotFound],
};

pub const AUDIT_LOG_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "The audit log entry you asked for does not exist in your workspace. \
            keyward records an audit entry (id `log_...`) for every change made through the \
            API; an entry of another workspace is reported as missing, like one that never \
            existed.",
    example_detail: "The requested audit log entry does not exist.",
    how_to_fix: &[
        "Check the id: audit log ids start with `log_`.",
        "Make sure the root key belongs to the workspace in which the change was made.",
    ],
    common_mistakes: &["Sending a request id (`req_...`) where an audit log id is expected."],
    related: &[ErrorCode::KeyNotFound, ErrorCode::IdentityNotFound],
};

pub const IDENTITY_ALREADY_EXISTS: ErrorDoc = ErrorDoc {
    what_happened: "`identities.createIdentity` was called with an `externalId` that a \
            live identity in this workspace already uses. An external id maps to at most one \
            identity per workspace, so keyward refuses to create a second one and leaves the \
            existing identity as it was.",
    example_detail: "Identity with externalId 'user_123' already exists in this workspace.",
    how_to_fix: &[
        "Fetch the existing identity with `identities.getIdentity`, passing the \
                `externalId`.",
        "To change its metadata or rate limits, call `identities.updateIdentity` instead.",
        "If you really need a fresh identity, delete the old one with \
                `identities.deleteIdentity` first.",
    ],
    common_mistakes: &[
        "Treating create as an upsert in sign-up code that can run twice for the same \
                user.",
        "Retrying a create whose first attempt succeeded but timed out on the client.",
    ],
    related: &[ErrorCode::IdentityNotFound],
};

pub const ROLE_ALREADY_EXISTS: ErrorDoc = ErrorDoc {
    what_happened: "`permissions.createRole` was called with a name that another role in \
            this workspace already has. Role names are unique per workspace because keys refer \
            to roles by name.",
    example_detail: "A role with name 'admin' already exists in this workspace.",
    how_to_fix: &[
        "Reuse the existing role; `permissions.getRole` returns it with its permissions.",
        "To change what it grants, call `permissions.setRolePermissions`.",
        "If you meant a new role, choose another name.",
    ],
    common_mistakes: &[
        "Setup scripts that create the same roles on every deploy without checking first.",
    ],
    related: &[ErrorCode::RoleNotFound, ErrorCode::PermissionAlreadyExists],
};

pub const PERMISSION_ALREADY_EXISTS: ErrorDoc = ErrorDoc {
    what_happened: "`permissions.createPermission` was called with a slug that a \
            permission in this workspace already uses. Slugs are unique per workspace, and a \
            difference in letter case alone does not make two slugs different.",
    example_detail: "A permission with slug 'documents.read' already exists in this \
            workspace.",
    how_to_fix: &[
        "Look up the existing permission with `permissions.getPermission` and reuse it.",
        "If you meant a new permission, choose another slug.",
    ],
    common_mistakes: &[
        "Setup scripts that create the same permissions on every run.",
        "Expecting `Documents.Read` and `documents.read` to be two permissions.",
    ],
    related: &[ErrorCode::PermissionNotFound, ErrorCode::RoleAlreadyExists],
};

pub const RATELIMIT_NAMESPACE_GONE: ErrorDoc = ErrorDoc {
    what_happened: "The ratelimit namespace exists but has been deleted. `ratelimit.limit` \
            and `ratelimit.multiLimit` refuse to count against it rather than quietly create a \
            new namespace with the same name, so that deleted limits do not come back by \
            accident. In a `multiLimit` batch, one deleted namespace fails the whole batch.",
    example_detail: "This namespace has been deleted.",
    how_to_fix: &[
        "Use a different namespace name in your calls; it is created on first use.",
        "If the namespace was deleted by mistake, ask the operator of this server whether \
                it can be restored.",
    ],
    common_mistakes: &["Deleting a namespace that production code still uses."],
    related: &[ErrorCode::RatelimitNamespaceNotFound],
};
